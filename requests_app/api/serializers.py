"""API serializers: validation and representation only; mutations live in services."""
from __future__ import annotations

import re

from rest_framework import serializers

from ..models import (
    Certificate,
    DenialException,
    EvaluationReport,
    Jurisdiction,
    LegalGround,
    RemovalTicket,
    TrainingRecord,
    UnlearningJob,
)
from .validation import INT64_MAX, json_value_check, parse_aware_datetime


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 datetime that must carry a UTC offset, in years 1900–9000: naive, impossible
    (2026-02-30) or out-of-range values are 400 (``validation.parse_aware_datetime``)."""

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parse_aware_datetime(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from exc
        return super().to_internal_value(value)


def json_field_validator(value) -> None:
    """Free-form JSON (hyper-parameters, certificate payloads): finite numbers, 64-bit integers,
    no NUL, bounded depth (also for form-encoded bodies, which bypass the JSON parser)."""
    try:
        json_value_check(value)
    except ValueError as exc:
        raise serializers.ValidationError(str(exc)) from exc


class StaffOnlyContextMixin:
    """``self.viewer_is_staff``: the request in the serializer context is by a staff role (fails closed)."""

    @property
    def viewer_is_staff(self) -> bool:
        from ..selectors import user_is_staff_role

        request = self.context.get("request")
        return bool(request is not None and user_is_staff_role(request.user))


class TicketCreateSerializer(serializers.Serializer):
    subject_id = serializers.UUIDField(required=False, help_text="the data subject's public id")
    subject_name = serializers.CharField(required=False, max_length=300, help_text="or the subject's name")
    jurisdiction = serializers.ChoiceField(choices=Jurisdiction.choices, default=Jurisdiction.GDPR)
    legal_ground = serializers.ChoiceField(choices=LegalGround.choices, required=False, default="")
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000, default="")
    evidence_text = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False,
        help_text="text about the subject to find in the training data; stored encrypted, purged after certification",
    )
    received_at = AwareDateTimeField(required=False, help_text="legal team only: when a request arrived by mail")

    def validate(self, attrs):
        if not attrs.get("subject_id") and not attrs.get("subject_name"):
            raise serializers.ValidationError("give subject_id or subject_name")
        return attrs


class TicketSerializer(StaffOnlyContextMixin, serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    subject = serializers.SerializerMethodField()
    target_model = serializers.CharField(source="target_model.name", default=None, read_only=True)
    jobs = serializers.SerializerMethodField()
    duplicate_of = serializers.SerializerMethodField()

    class Meta:
        model = RemovalTicket
        fields = [
            "id", "status", "subject", "target_model", "jurisdiction", "legal_ground", "description",
            "received_at", "ack_due_at", "due_at", "identity_verified_at", "verification_level",
            "decision", "exception_code", "decision_reason", "forget_set_sha256", "failure_reason",
            "original_due_at", "extension_reason", "extension_notified_at", "hold_reason", "duplicate_of",
            "evidence_sha256", "evidence_bytes", "evidence_purged_at", "jobs", "created_at", "updated_at",
        ]

    def get_subject(self, obj) -> dict:
        """``{"id", "display_name", "found"}``; a request naming nobody found has ``id`` None, the
        name given as ``display_name`` and ``found`` false (issue 21 item 3)."""
        if obj.subject_id is None:
            return {"id": None, "display_name": obj.subject_name_given, "found": False}
        return {"id": str(obj.subject.public_id), "display_name": obj.subject.display_name, "found": True}

    def get_jobs(self, obj) -> list[str]:
        if self.context.get("new_ticket"):  # just filed: no job can exist yet (one query less per submission)
            return []
        return [str(j.public_id) for j in obj.jobs.order_by("id")]

    def get_duplicate_of(self, obj) -> str | None:
        """The earlier open ticket for the same subject: for staff; for an owner only if it is theirs
        (another requester's ticket id is not theirs to see)."""
        dup = obj.duplicate_of
        if dup is None or not (self.viewer_is_staff or dup.requester_id == obj.requester_id):
            return None
        return str(dup.public_id)


class VerifyIdentitySerializer(serializers.Serializer):
    # ASCII digits only: a full-width "０１２３４５" is malformed input, not a wrong try (fresh-user trial)
    code = serializers.RegexField(r"^\s*[0-9]{6}\s*$", help_text="the 6-digit code from the e-mail")


class ApproveSerializer(serializers.Serializer):
    method = serializers.CharField(default="dp2", max_length=100)
    hyperparameters = serializers.DictField(required=False, default=dict, validators=[json_field_validator])
    record_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=INT64_MAX),
                                       required=False, allow_empty=True, max_length=100_000)
    model = serializers.CharField(required=False, max_length=200, help_text="target model name (default: the ticket's)")


class ResolutionConfirmSerializer(serializers.Serializer):
    record_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
                                       allow_empty=False, max_length=100_000)


class DenySerializer(serializers.Serializer):
    exception_code = serializers.ChoiceField(
        choices=DenialException.choices,
        help_text="GDPR Art. 17(3) / 12(5) codes for GDPR and other tickets, CCPA §1798.105(d) codes for CCPA "
                  "tickets (another jurisdiction's code is a 400)")
    reason = serializers.CharField(max_length=5000)


class ComparisonSerializer(serializers.Serializer):
    method = serializers.CharField(max_length=100)
    hyperparameters = serializers.DictField(required=False, default=dict, validators=[json_field_validator])


class RecordSerializer(serializers.ModelSerializer):
    subject = serializers.SerializerMethodField()
    provenance = serializers.SerializerMethodField()
    confirmed = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRecord
        fields = ["id", "index", "question", "answer", "text", "sha256", "subject", "provenance", "confirmed"]

    def get_confirmed(self, obj) -> bool:
        """Confirmed by a reviewer (``POST .../resolution/``) for this ticket."""
        ticket = self.context.get("ticket")
        return ticket is not None and obj.pk in (ticket.confirmed_record_ids or [])

    def get_subject(self, obj) -> str | None:
        return str(obj.subject.public_id) if obj.subject_id else None

    def get_provenance(self, obj) -> str:
        ticket = self.context.get("ticket")
        linked = ticket is not None and ticket.subject_id is not None and obj.subject_id == ticket.subject_id
        return "linked" if linked else "content match"


class EvaluationReportSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version_id")

    class Meta:
        model = EvaluationReport
        fields = ["id", "role", "model_version", "forget_set_sha256", "manifest_sha256", "metrics", "profile",
                  "reference_type",
                  "verdicts", "passed", "created_at"]


#: ``file://``/``s3://`` URIs and absolute server paths in job results, errors and profiles.
_INTERNAL_LOCATION = re.compile(r"\b(?:file|s3|gs|https?)://[^\s'\"]+|(?<![\w.~-])/(?:[\w.@+-]+/)+[\w.@+-]*")
_OWNER_HIDDEN_KEYS = frozenset({"artifact_uri", "worker", "model_dir", "output_dir", "base_dir", "dp_base_dir",
                                "path", "tokenizer_name",
                                # the full manifest lists other people's record ids (retain, holdout); owners
                                # get its digest in the reports and its summary in the certificate
                                "evaluation_manifest"})


def redact_internal(value):
    """A copy of ``value`` without keys naming internal locations and with URIs/paths in strings
    replaced by ``[internal]`` (what data owners see of a job)."""
    if isinstance(value, dict):
        return {k: (None if k in _OWNER_HIDDEN_KEYS else redact_internal(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_internal(v) for v in value]
    if isinstance(value, str):
        return _INTERNAL_LOCATION.sub("[internal]", value)
    return value


class JobSerializer(StaffOnlyContextMixin, serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    tickets = serializers.SerializerMethodField()
    produced_version = serializers.SerializerMethodField()
    reports = EvaluationReportSerializer(many=True, read_only=True)
    certificate = serializers.SerializerMethodField()
    suppression_notice = serializers.SerializerMethodField()

    class Meta:
        model = UnlearningJob
        fields = ["id", "method", "hyperparameters", "publish", "status", "progress", "attempts", "worker",
                  "queued_at", "started_at", "heartbeat_at", "finished_at", "device_seconds",
                  "forget_set_sha256", "forget_count", "result", "error", "tickets", "produced_version",
                  "reports", "certificate", "suppression_notice"]

    def get_tickets(self, obj) -> list[str]:
        return [str(t.public_id) for t in obj.tickets.all()]

    def get_produced_version(self, obj) -> dict | None:
        v = getattr(obj, "produced_version", None)
        if v is None:
            return None
        return {"id": v.pk, "role": v.role, "sequence": v.sequence, "weights_sha256": v.weights_sha256,
                "is_serving": v.is_serving}

    def get_certificate(self, obj) -> str | None:
        """The erasure certificate's id (a suppression notice is listed apart)."""
        cert = getattr(obj, "certificate", None)
        return str(cert.public_id) if cert and cert.document_type == Certificate.ERASURE else None

    def get_suppression_notice(self, obj) -> str | None:
        cert = getattr(obj, "certificate", None)
        return str(cert.public_id) if cert and cert.document_type == Certificate.SUPPRESSION else None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if self.viewer_is_staff:
            return data
        # Data owners (and callers without a request in the context): no artifact URIs, server
        # paths or worker host names (issue 13 item 9).
        keep = ("id", "tickets", "certificate")
        return {k: v if k in keep else None if k in _OWNER_HIDDEN_KEYS else redact_internal(v) for k, v in data.items()}


class CertificateSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = Certificate
        fields = ["id", "document_type", "payload", "signature", "key_id", "algorithm", "issued_at", "transparency"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["payload"] = instance.as_document()["payload"]  # exactly the signed payload
        return data


class CertificateVerifySerializer(serializers.Serializer):
    payload = serializers.DictField(validators=[json_field_validator])
    signature = serializers.CharField(max_length=200, trim_whitespace=False)
    key_id = serializers.CharField(max_length=200, trim_whitespace=False)
    algorithm = serializers.CharField(max_length=50, trim_whitespace=False)
    transparency = serializers.DictField(required=False, help_text=(
        "audit-inclusion/1: the audit log's signed tree head and the inclusion proof of the issuance event"))


class NoDataSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="",
                                 help_text="sent to the requester with the answer")


class SubjectLinkSerializer(serializers.Serializer):
    subject_id = serializers.UUIDField(required=False, help_text="the data subject's public id")
    subject_name = serializers.CharField(required=False, max_length=300, help_text="or a name or alias")

    def validate(self, attrs):
        if not attrs.get("subject_id") and not attrs.get("subject_name"):
            raise serializers.ValidationError("give subject_id or subject_name")
        return attrs


class HoldSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)


class ExtendSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)
    days = serializers.IntegerField(required=False, min_value=1, max_value=62)
    months = serializers.IntegerField(required=False, min_value=1, max_value=2)

    def validate(self, attrs):
        if attrs.get("days") and attrs.get("months"):  # fresh-user trial: both were applied
            raise serializers.ValidationError("give days or months, not both")
        return attrs


class RetrySerializer(serializers.Serializer):
    method = serializers.CharField(required=False, max_length=100)
    hyperparameters = serializers.DictField(required=False, validators=[json_field_validator])


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        from ..models import AuditEvent

        model = AuditEvent
        fields = ["id", "timestamp", "actor", "verb", "object_type", "object_id", "before", "after", "prev_hash", "hash"]


class JobCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)
