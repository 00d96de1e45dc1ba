"""Operator onboarding API (issue 14): corpora, target models, versions, privacy ledger, preparations.

Only ``ml_operator`` (or a superuser) writes; every staff role (legal team, operators, auditors)
reads. Bad input is a 400 with the reason (a corpus validation report lists bad lines by number).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from .. import selectors, services
from ..models import PreparationJob, TargetModel, TrainingCorpus
from . import onboarding_serializers as s
from .permissions import OPERATOR


class StaffReadOperatorWrite(BasePermission):
    """GET for every staff role; anything else for ML operators only."""

    message = "only ML operators register and prepare corpora and models; the legal team and auditors read"

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and selectors.user_is_staff_role(user)):
            return False
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return bool(user.is_superuser or OPERATOR in selectors.user_roles(user))


def _truthy(value) -> bool:
    return str(value or "").lower() in ("1", "true", "yes")


def _corpus_convert(v: dict, out) -> dict:
    """Convert an ``image_archive`` or ``csv`` upload into JSONL in ``out`` (services.corpus_formats)."""
    from ..services import corpus_formats as cf

    classes = cf.parse_classes(v.get("classes"))
    if v["format"] == "csv":
        return cf.csv_to_jsonl(v["file"], out, classes=classes)
    return cf.image_archive_to_jsonl(v["file"], out, classes=classes, manifest_file=v.get("manifest"),
                                     resize=cf.parse_resize(v.get("resize")), mode=v.get("mode") or "L",
                                     max_pixels=settings.CORPUS_IMAGE_MAX_PIXELS)


class CorpusViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training corpora. ``POST`` validates the JSONL (a report) and, unless ``dry_run``, queues its ingestion."""

    serializer_class = s.CorpusSerializer
    permission_classes = [StaffReadOperatorWrite]
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    queryset = TrainingCorpus.objects.order_by("id")
    lookup_value_regex = r"\d{1,18}"

    @extend_schema(
        request={"multipart/form-data": s.CorpusCreateSerializer, "application/json": s.CorpusCreateSerializer},
        parameters=[OpenApiParameter("dry_run", bool, description="validate only: 200 with the report")],
        responses={200: dict, 202: s.PreparationSerializer, 400: dict})
    def create(self, request):
        """Validate a corpus (streamed) and queue its ingestion: 202 with the ``corpus_ingest``
        preparation job (its ``result.report`` and ``result.corpus`` once done). An invalid corpus
        is 400 with ``report`` (bad lines by number); ``?dry_run=1`` answers 200 with the report."""
        data = s.CorpusCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dry = _truthy(request.query_params.get("dry_run") or request.data.get("dry_run"))
        if not dry and TrainingCorpus.objects.filter(name=v["name"]).exists():
            return Response({"detail": f"a corpus named '{v['name']}' already exists"}, status=400)
        conversion = None
        with tempfile.NamedTemporaryFile(dir=settings.VAR_DIR, suffix=".jsonl") as tmp:
            if v.get("file") is not None:  # validated from a local copy; stored only when accepted
                if v.get("format", "jsonl") == "jsonl":
                    for chunk in v["file"].chunks():
                        tmp.write(chunk)
                else:  # issue 19: image archive / CSV → feature-row JSONL (ServiceError → 400 naming the line)
                    conversion = _corpus_convert(v, tmp)
                tmp.flush()
                report = services.corpus_validate(Path(tmp.name).as_uri())
                if conversion:
                    report["conversion"] = conversion
            else:
                uri = services.corpus_source_check(v["source_uri"])
                report = services.corpus_validate(uri)
            if dry or not report["valid"]:
                body = {"report": report}
                if not report["valid"]:
                    first = report["bad_lines"][0]
                    body["detail"] = f"{report['errors']} invalid line(s); first: line {first['line']}: {first['error']}"
                return Response(body, status=200 if report["valid"] else 400)
            if v.get("file") is not None:
                tmp.seek(0)
                uri = services.corpus_upload_store(tmp)
        job = services.corpus_ingest_request(actor=request.user, name=v["name"], source_uri=uri,
                                             description=v.get("description", ""))
        job.refresh_from_db()
        return Response({**s.PreparationSerializer(job).data, "report": report}, status=status.HTTP_202_ACCEPTED)


class TargetModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Registered target models with their lineage, privacy ledger and preparations."""

    serializer_class = s.TargetModelSerializer
    permission_classes = [StaffReadOperatorWrite]
    queryset = TargetModel.objects.order_by("id")
    lookup_value_regex = r"\d{1,18}"

    @extend_schema(request=s.ModelCreateSerializer, responses={201: s.TargetModelSerializer, 400: dict})
    def create(self, request):
        """Register an existing model: sha256 verified, weights loaded, tokenizer checked against the
        vocabulary, artifacts copied into the store; version 0 becomes serving."""
        data = s.ModelCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        ref = v["corpus"]
        corpus = (TrainingCorpus.objects.filter(pk=int(ref)).first() if ref.isdigit() and len(ref) < 19 else None) or \
            TrainingCorpus.objects.filter(name=ref).first()
        if corpus is None:
            return Response({"detail": f"no training corpus '{ref}'"}, status=400)
        model = services.model_register_from_artifact(
            actor=request.user, name=v["name"], corpus=corpus, artifact_uri=v["artifact_uri"],
            weights_sha256=v["weights_sha256"], gguf_file=v["gguf_file"], base_artifact_uri=v["base_artifact_uri"],
            base_sha256=v["base_sha256"], base_gguf_file=v["base_gguf_file"],
            training_recipe=v["training_recipe"], reference_policy=v["reference_policy"], family=v["family"])
        return Response(s.TargetModelSerializer(model).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: s.ModelVersionSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        """Every version: lineage (parent, producing job, sequence n, serving flag) and last metrics."""
        model = self.get_object()
        versions = model.versions.select_related("produced_by").order_by("id")
        return Response(s.ModelVersionSerializer(versions, many=True).data)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"], url_path="privacy-ledger")
    def privacy_ledger(self, request, pk=None):
        """The DP base's ledger (ε achieved and target, δ, σ, q, steps, accountant, privacy unit)."""
        model = self.get_object()
        return Response({"model": model.pk, "dp_base_sha256": model.dp_base_sha256,
                         "dp2_available": not services.model_dp2_unavailable_reason(model),
                         "ledger": model.privacy_ledger or {}})

    @extend_schema(request=s.PrepareSerializer, responses={202: s.PreparationSerializer, 400: dict})
    @action(detail=True, methods=["post"])
    def prepare(self, request, pk=None):
        """Queue a ``dp_base`` or ``reference`` preparation on the ``gpu`` queue (202)."""
        model = self.get_object()
        data = s.PrepareSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        kind = v.pop("kind")
        if v.get("subject_id"):
            v["subject_id"] = str(v["subject_id"])
        job = services.model_prepare(actor=request.user, model=model, kind=kind, params=v)
        job.refresh_from_db()
        return Response(s.PreparationSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.CalibrateSerializer, responses={202: s.PreparationSerializer, 400: dict})
    @action(detail=True, methods=["post"])
    def calibrate(self, request, pk=None):
        """Queue a calibration of ``method`` on this model (a ``calibration`` preparation on the ``gpu``
        queue, 202): trials on a calibration request of subjects nobody asked to erase, judged by the
        verdict on the calibration half of the holdout; the cheapest passing trial becomes the
        model's default for the method. ``GET /preparations/{id}/`` follows it; its ``result`` holds
        the report (every trial) and ``report_uri`` (report.json, plot.png)."""
        model = self.get_object()
        data = s.CalibrateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        job = services.model_calibrate(actor=request.user, model=model, method=v["method"],
                                       search_space=v.get("search_space"),
                                       subject_ids=[str(x) for x in v.get("subject_ids") or []] or None,
                                       subjects=v["subjects"], strategy=v["strategy"], max_trials=v["max_trials"],
                                       max_seconds=v["max_seconds"], seed=v["seed"])
        job.refresh_from_db()
        return Response(s.PreparationSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def calibrations(self, request, pk=None):
        """The calibrated defaults per method (``calibrated``) and every calibration job (``jobs``)."""
        model = self.get_object()
        jobs = model.preparations.filter(kind=PreparationJob.KIND_CALIBRATION).order_by("-id")
        return Response({"calibrated": s.MethodCalibrationSerializer(
                            model.calibrations.select_related("calibration"), many=True).data,
                         "jobs": s.PreparationSerializer(jobs, many=True).data})

    @extend_schema(responses={200: s.PreparationSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def preparations(self, request, pk=None):
        model = self.get_object()
        return Response(s.PreparationSerializer(model.preparations.order_by("-id"), many=True).data)


class PreparationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Preparation jobs (corpus ingestion, DP base, reference) with progress and outcome."""

    serializer_class = s.PreparationSerializer
    permission_classes = [StaffReadOperatorWrite]
    lookup_field = "public_id"
    queryset = PreparationJob.objects.order_by("-id")
    filterset_fields = ["kind", "status", "model"]

    @extend_schema(request=None, responses={200: s.PreparationSerializer, 409: dict})
    @action(detail=True, methods=["post"])
    def cancel(self, request, public_id=None):
        job = get_object_or_404(PreparationJob, public_id=public_id)
        job = services.preparation_cancel(job=job, actor=request.user)
        return Response(s.PreparationSerializer(job).data)
