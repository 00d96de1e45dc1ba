"""Thin DRF views: parse, call one service, render. Errors: 400 bad input, 403 role, 404 not yours,
409 forbidden or stale transition (with the current status)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..logging import log_context_set, log_scope
from ..models import Certificate, RemovalTicket, TargetModel, UnlearningJob
from . import serializers as s
from .permissions import (
    APPROVER,
    OPERATOR,
    IsApprover,
    IsAuditorOrLegal,
    IsOperatorOrLegal,
    IsReviewer,
)
from .throttles import IDENTITY_CODE_THROTTLES
from .validation import idempotency_key_check, parse_period_bound


class IsOperatorOrApprover(BasePermission):
    message = "only ML operators and legal approvers may cancel a job"

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated
                    and (user.is_superuser or selectors.user_roles(user) & {OPERATOR, APPROVER}))


class LogContextMixin:
    """Log records written while handling the request carry the ticket or job id of its URL
    (``requests_app.logging``); ``log_context_key`` says which."""

    log_context_key = "ticket_id"

    def dispatch(self, request, *args, **kwargs):
        lookup = kwargs.get(getattr(self, "lookup_url_kwarg", None) or getattr(self, "lookup_field", "pk"))
        with log_scope(**{self.log_context_key: lookup}):
            return super().dispatch(request, *args, **kwargs)


class TicketViewSet(LogContextMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Erasure requests. Data owners see and act on their own; the legal team on all."""

    serializer_class = s.TicketSerializer
    lookup_field = "public_id"
    filterset_fields = ["status", "jurisdiction"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return RemovalTicket.objects.none()
        return selectors.tickets_visible_to(self.request.user)

    @extend_schema(request=s.TicketCreateSerializer, responses={201: s.TicketSerializer, 200: s.TicketSerializer})
    def create(self, request):
        """File a request. A replay with the same ``Idempotency-Key`` header returns the original (200);
        the same key with another body is 422. Evidence text above the limit is 413."""
        import hashlib
        import json

        data = s.TicketCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            idempotency_key = idempotency_key_check(request.headers.get("Idempotency-Key"))
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=400)
        if v.get("received_at") and not selectors.user_is_staff_role(request.user):
            return Response({"detail": "only the legal team may back-date a request's receipt"}, status=403)
        body_sha = hashlib.sha256(json.dumps(request.data, sort_keys=True, default=str).encode()).hexdigest()
        if v.get("subject_id"):  # an unknown id is the client's mistake (400)
            subject = services.subject_lookup(public_id=str(v["subject_id"]))
        else:  # an unknown name is filed anyway (issue 21 item 3); an ambiguous one is 400
            subject = services.subject_find_by_name(v["subject_name"])
        ticket, created = services.ticket_create(
            requester=request.user, subject=subject, subject_name_given=v.get("subject_name") or "",
            jurisdiction=v["jurisdiction"],
            legal_ground=v.get("legal_ground", ""), description=v.get("description", ""),
            idempotency_key=idempotency_key, request_body_sha256=body_sha,
            received_at=v.get("received_at"), evidence_text=v.get("evidence_text", ""),
        )
        log_context_set(ticket_id=ticket.public_id)
        return Response(s.TicketSerializer(ticket, context={"new_ticket": created}).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], url_path="resend-code", throttle_classes=IDENTITY_CODE_THROTTLES)
    def resend_code(self, request, public_id=None):
        """Send a fresh identity code (wrong codes still count towards the ticket's total cap); throttled per ticket and IP."""
        ticket = self.get_object()
        if ticket.requester_id != request.user.pk:
            return Response({"detail": "only the requester can ask for a code"}, status=403)
        services.ticket_resend_code(ticket=ticket, actor=request.user)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=s.VerifyIdentitySerializer, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], url_path="verify-identity", throttle_classes=IDENTITY_CODE_THROTTLES)
    def verify_identity(self, request, public_id=None):
        ticket = self.get_object()
        if ticket.requester_id != request.user.pk:
            return Response({"detail": "only the requester can verify their identity"}, status=403)
        data = s.VerifyIdentitySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_verify_identity(ticket=ticket, code=data.validated_data["code"], actor=request.user)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=None, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsReviewer])
    def review(self, request, public_id=None):
        ticket = self.get_object()
        ticket = services.ticket_start_review(ticket=ticket, reviewer=request.user)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=s.ResolutionConfirmSerializer, responses=s.RecordSerializer(many=True))
    @action(detail=True, methods=["get", "post"], permission_classes=[IsReviewer])
    def resolution(self, request, public_id=None):
        """GET: training records the request covers (provenance links plus content matches).
        POST ``{"record_ids": [...]}``: the reviewer confirms the set (audited); approval then takes
        only provenance links and confirmed content matches."""
        ticket = self.get_object()
        if request.method == "POST":
            data = s.ResolutionConfirmSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            ticket = services.ticket_confirm_resolution(ticket=ticket, reviewer=request.user,
                                                        record_ids=data.validated_data["record_ids"])
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
        job = services.ticket_approve(
            ticket=ticket, approver=request.user, method=v["method"], hyperparameters=v.get("hyperparameters"),
            record_ids=v.get("record_ids"), target_model=model,
        )
        job.refresh_from_db()
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.DenySerializer, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsApprover])
    def deny(self, request, public_id=None):
        ticket = self.get_object()
        data = s.DenySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_deny(ticket=ticket, actor=request.user, **data.validated_data)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=None, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, public_id=None):
        ticket = self.get_object()
        if ticket.requester_id != request.user.pk:
            return Response({"detail": "only the requester can withdraw a request"}, status=403)
        ticket = services.ticket_withdraw(ticket=ticket, actor=request.user)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=s.ComparisonSerializer, responses={201: s.JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperatorOrLegal])
    def compare(self, request, public_id=None):
        """Run another method on the approved forget set; evaluated, never published."""
        ticket = self.get_object()
        data = s.ComparisonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.job_create_comparison(ticket=ticket, actor=request.user, **data.validated_data)
        job.refresh_from_db()
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.NoDataSerializer, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], url_path="no-data", permission_classes=[IsReviewer])
    def no_data(self, request, public_id=None):
        """Answer a request in review "no data held" (nothing of the person is in the training data);
        the owner is e-mailed the answer. 400 when records match, 409 when not in review."""
        data = s.NoDataSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_confirm_no_data(ticket=self.get_object(), actor=request.user,
                                                 note=data.validated_data["note"])
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=s.SubjectLinkSerializer, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], url_path="link-subject", permission_classes=[IsReviewer])
    def link_subject(self, request, public_id=None):
        """Link the data subject found by hand to a request filed without one (before approval)."""
        data = s.SubjectLinkSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        subject = services.subject_lookup(public_id=str(v["subject_id"]) if v.get("subject_id") else None,
                                          name=v.get("subject_name"))
        ticket = services.ticket_subject_resolve(ticket=self.get_object(), actor=request.user, subject=subject)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=s.HoldSerializer, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsReviewer])
    def hold(self, request, public_id=None):
        """Legal hold (until the job runs)."""
        data = s.HoldSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_hold(ticket=self.get_object(), actor=request.user, **data.validated_data)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=None, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsReviewer])
    def release(self, request, public_id=None):
        """Release a legal hold (back to review)."""
        ticket = services.ticket_release_hold(ticket=self.get_object(), actor=request.user)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=s.ExtendSerializer, responses=s.TicketSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsReviewer])
    def extend(self, request, public_id=None):
        """Extend the deadline once (GDPR ≤ 2 months, CCPA ≤ 45 days) with a reason sent to the requester."""
        data = s.ExtendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_extend_deadline(ticket=self.get_object(), actor=request.user, **data.validated_data)
        return Response(s.TicketSerializer(ticket).data)

    @extend_schema(request=s.ComparisonSerializer, responses={201: s.JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperatorOrLegal])
    def retry(self, request, public_id=None):
        """Re-queue a failed ticket with a new job (optionally another method or settings)."""
        data = s.RetrySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.ticket_retry(ticket=self.get_object(), actor=request.user, **data.validated_data)
        job.refresh_from_db()
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.CertificateSerializer)
    @action(detail=True, methods=["get"])
    def certificate(self, request, public_id=None):
        ticket = self.get_object()
        certs = Certificate.objects.filter(job__tickets=ticket).order_by("-id")
        cert = certs.filter(document_type=Certificate.ERASURE).first()
        if cert is None:
            notice = certs.filter(document_type=Certificate.SUPPRESSION).first()
            extra = (f"; suppression notice {notice.public_id} (not an erasure certificate: the weights still "
                     "hold the data)" if notice else "")
            return Response({"detail": f"no erasure certificate (ticket is '{ticket.status}'){extra}"}, status=404)
        return Response(s.CertificateSerializer(cert).data)


class JobViewSet(LogContextMixin, viewsets.ReadOnlyModelViewSet):
    """Unlearning jobs with progress, reports and verdicts. Owners see the jobs of their tickets."""

    serializer_class = s.JobSerializer
    lookup_field = "public_id"
    filterset_fields = ["status", "method"]
    log_context_key = "job_id"

    def get_queryset(self):
        qs = UnlearningJob.objects.prefetch_related("tickets", "reports").select_related("model")
        if getattr(self, "swagger_fake_view", False):
            return qs.none()
        if selectors.user_is_staff_role(self.request.user):
            return qs
        return qs.filter(tickets__requester=self.request.user).distinct()

    @extend_schema(request=s.JobCancelSerializer, responses={200: s.JobSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperatorOrApprover])
    def cancel(self, request, public_id=None):
        """Cancel a queued or running job (ML operators and legal approvers). Its tickets become
        ``failed`` (retryable); the worker stops at its next heartbeat. A finished job is 409 with
        ``current_status``."""
        job = self.get_object()
        data = s.JobCancelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reason = data.validated_data.get("reason") or f"cancelled by {request.user.get_username()}"
        services.job_cancel(job=job, actor=request.user, reason=reason)
        return Response(s.JobSerializer(self.get_queryset().get(pk=job.pk)).data)


class CertificateViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.CertificateSerializer
    lookup_field = "public_id"

    def get_queryset(self):
        qs = Certificate.objects.all()
        if getattr(self, "swagger_fake_view", False):
            return qs.none()
        if selectors.user_is_staff_role(self.request.user):
            return qs
        return qs.filter(job__tickets__requester=self.request.user).distinct()


class MeView(APIView):
    """The signed-in user and their role groups."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response({"username": request.user.get_username(), "roles": sorted(selectors.user_roles(request.user))})


class CcpaReportView(APIView):
    """CCPA regulations §7102 figures for a period (default: the last 12 months). ``start`` and ``end``:
    aware ISO 8601 datetimes, or plain dates (whole UTC days, ``end`` inclusive)."""

    permission_classes = [IsAuthenticated, IsAuditorOrLegal]

    @extend_schema(parameters=[OpenApiParameter("start", str), OpenApiParameter("end", str)], responses={200: dict})
    def get(self, request):
        import datetime as dt

        from django.utils import timezone

        end = timezone.now()
        start = end - dt.timedelta(days=365)
        for name in ("start", "end"):
            raw = request.query_params.get(name)
            if raw:
                try:  # a plain date is a whole UTC day, the end inclusive (issue 21 item 10)
                    value = parse_period_bound(raw, end=name == "end")
                except ValueError as exc:
                    return Response({"detail": f"{name}: {exc}"}, status=400)
                if name == "start":
                    start = value
                else:
                    end = value
        if start >= end:
            return Response({"detail": "start must be before end"}, status=400)
        return Response(selectors.ccpa_metrics(start=start, end=end))


class DeadlinesView(APIView):
    """Open tickets that are overdue or due within ``DUE_SOON_DAYS`` (legal team and auditors)."""

    permission_classes = [IsAuthenticated, IsAuditorOrLegal]

    @extend_schema(responses={200: dict})
    def get(self, request):
        import datetime as dt

        from django.conf import settings
        from django.utils import timezone

        now = timezone.now()
        soon = selectors.tickets_due_soon(now=now, horizon=now + dt.timedelta(days=settings.DUE_SOON_DAYS))
        return Response({
            "now": now.isoformat(),
            "overdue": s.TicketSerializer(selectors.tickets_overdue(now=now), many=True).data,
            "due_soon": s.TicketSerializer(soon, many=True).data,
        })
