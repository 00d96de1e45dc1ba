"""Thin DRF views: parse, call one service, render. Errors: 400 bad input, 403 role, 404 not yours,
409 forbidden or stale transition (with the current status)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..certificates import certificate_verify_document
from ..models import Certificate, TargetModel, UnlearningJob
from ..workflow import TransitionError
from . import serializers as s
from .permissions import IsApprover, IsOperatorOrLegal, IsReviewer


def _error(exc: Exception) -> Response:
    if isinstance(exc, TransitionError):
        return Response({"detail": str(exc), "current_status": exc.current_status}, status=status.HTTP_409_CONFLICT)
    return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


class TicketViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Erasure requests. Data owners see and act on their own; the legal team on all."""

    serializer_class = s.TicketSerializer
    lookup_field = "public_id"
    filterset_fields = ["status", "jurisdiction"]

    def get_queryset(self):
        return selectors.tickets_visible_to(self.request.user)

    @extend_schema(request=s.TicketCreateSerializer, responses={201: s.TicketSerializer, 200: s.TicketSerializer})
    def create(self, request):
        """File a request; a replay with the same ``Idempotency-Key`` header returns the original."""
        data = s.TicketCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            subject = services.subject_lookup(
                public_id=str(v["subject_id"]) if v.get("subject_id") else None, name=v.get("subject_name")
            )
            ticket, created = services.ticket_create(
                requester=request.user, subject=subject, jurisdiction=v["jurisdiction"],
                legal_ground=v.get("legal_ground", ""), description=v.get("description", ""),
                idempotency_key=request.headers.get("Idempotency-Key") or None,
            )
        except services.ServiceError as exc:
            return _error(exc)
        return Response(s.TicketSerializer(ticket).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=s.VerifyIdentitySerializer, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], url_path="verify-identity")
    def verify_identity(self, request, public_id=None):
        ticket = self.get_object()
        if ticket.requester_id != request.user.pk:
            return Response({"detail": "only the requester can verify their identity"}, status=403)
        data = s.VerifyIdentitySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            ticket = services.ticket_verify_identity(ticket=ticket, code=data.validated_data["code"], actor=request.user)
        except (services.ServiceError, TransitionError) as exc:
            return _error(exc)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=None, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsReviewer])
    def review(self, request, public_id=None):
        ticket = self.get_object()
        try:
            ticket = services.ticket_start_review(ticket=ticket, reviewer=request.user)
        except TransitionError as exc:
            return _error(exc)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(responses=s.RecordSerializer(many=True))
    @action(detail=True, methods=["get"], permission_classes=[IsReviewer])
    def resolution(self, request, public_id=None):
        """Training records the request covers: provenance links plus content matches."""
        ticket = self.get_object()
        records = selectors.ticket_resolution(ticket=ticket)
        return Response(s.RecordSerializer(records, many=True, context={"ticket": ticket}).data)

    @extend_schema(request=s.ApproveSerializer, responses={201: s.JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsApprover])
    def approve(self, request, public_id=None):
        ticket = self.get_object()
        data = s.ApproveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        model = None
        if v.get("model"):
            model = TargetModel.objects.filter(name=v["model"]).first()
            if model is None:
                return Response({"detail": f"unknown model '{v['model']}'"}, status=400)
        try:
            job = services.ticket_approve(
                ticket=ticket, approver=request.user, method=v["method"], hyperparameters=v.get("hyperparameters"),
                record_ids=v.get("record_ids"), target_model=model,
            )
        except (services.ServiceError, TransitionError) as exc:
            return _error(exc)
        job.refresh_from_db()
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.DenySerializer, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsApprover])
    def deny(self, request, public_id=None):
        ticket = self.get_object()
        data = s.DenySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            ticket = services.ticket_deny(ticket=ticket, actor=request.user, **data.validated_data)
        except (services.ServiceError, TransitionError) as exc:
            return _error(exc)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=None, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, public_id=None):
        ticket = self.get_object()
        if ticket.requester_id != request.user.pk:
            return Response({"detail": "only the requester can withdraw a request"}, status=403)
        try:
            ticket = services.ticket_withdraw(ticket=ticket, actor=request.user)
        except TransitionError as exc:
            return _error(exc)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=s.ComparisonSerializer, responses={201: s.JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperatorOrLegal])
    def compare(self, request, public_id=None):
        """Run another method on the approved forget set; evaluated, never published."""
        ticket = self.get_object()
        data = s.ComparisonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            job = services.job_create_comparison(ticket=ticket, actor=request.user, **data.validated_data)
        except services.ServiceError as exc:
            return _error(exc)
        job.refresh_from_db()
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.CertificateSerializer)
    @action(detail=True, methods=["get"])
    def certificate(self, request, public_id=None):
        ticket = self.get_object()
        cert = Certificate.objects.filter(job__tickets=ticket).order_by("-id").first()
        if cert is None:
            return Response({"detail": f"no certificate yet (ticket is '{ticket.status}')"}, status=404)
        return Response(s.CertificateSerializer(cert).data)


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Unlearning jobs with progress, reports and verdicts. Owners see the jobs of their tickets."""

    serializer_class = s.JobSerializer
    lookup_field = "public_id"
    filterset_fields = ["status", "method"]

    def get_queryset(self):
        qs = UnlearningJob.objects.prefetch_related("tickets", "reports").select_related("model")
        if selectors.user_is_staff_role(self.request.user):
            return qs
        return qs.filter(tickets__requester=self.request.user).distinct()


class CertificateViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.CertificateSerializer
    lookup_field = "public_id"

    def get_queryset(self):
        qs = Certificate.objects.all()
        if selectors.user_is_staff_role(self.request.user):
            return qs
        return qs.filter(job__tickets__requester=self.request.user).distinct()


class CertificateVerifyView(APIView):
    """Anyone may check a certificate's signature and key against the published keys."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(request=s.CertificateVerifySerializer, responses={200: dict})
    def post(self, request):
        data = s.CertificateVerifySerializer(data=request.data)
        if not data.is_valid():
            return Response({"valid": False, "reason": "malformed certificate", "errors": data.errors}, status=400)
        result = certificate_verify_document(dict(request.data))
        return Response({"valid": result.valid, "reason": result.reason})


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"username": request.user.get_username(), "roles": sorted(selectors.user_roles(request.user))})

