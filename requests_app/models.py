"""Domain model (DESIGN §3).

State changes never happen by saving these rows directly: they go through ``services.py``, which
compare-and-sets the status and writes the :class:`AuditEvent` in the same transaction.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class TrainingCorpus(models.Model):
    """A dataset a model was trained on; JSONL in the artifact store with its content digest."""

    KIND_QA = "qa"
    KIND_TEXT = "text"
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=[(KIND_QA, "question/answer"), (KIND_TEXT, "plain text")])
    artifact_uri = models.CharField(max_length=500, blank=True)
    content_sha256 = models.CharField(max_length=64)
    record_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "training corpora"

    def __str__(self) -> str:
        return self.name


class DataSubject(models.Model):
    """A person whose data is in corpora (GDPR Art. 4(1) data subject)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    display_name = models.CharField(max_length=300)
    aliases = models.JSONField(default=list, blank=True)
    email_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    external_ids = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name


class TrainingRecord(models.Model):
    """One training example. Never deleted by unlearning: ``forgotten_by`` is the tombstone."""

    SPLIT_TRAIN = "train"
    SPLIT_HOLDOUT = "holdout"
    corpus = models.ForeignKey(TrainingCorpus, on_delete=models.PROTECT, related_name="records")
    index = models.PositiveIntegerField()
    split = models.CharField(
        max_length=8, default=SPLIT_TRAIN,
        choices=[(SPLIT_TRAIN, "train (member)"), (SPLIT_HOLDOUT, "holdout (never trained on)")],
    )
    text = models.TextField(blank=True)
    question = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    subject = models.ForeignKey(
        DataSubject, null=True, blank=True, on_delete=models.PROTECT, related_name="records"
    )
    sha256 = models.CharField(max_length=64, db_index=True)
    forgotten_by = models.ForeignKey(
        "UnlearningJob", null=True, blank=True, on_delete=models.PROTECT, related_name="forgotten_records"
    )
    forgotten_at = models.DateTimeField(null=True, blank=True)
    text_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["corpus", "split", "index"], name="record_unique_index")]
        ordering = ["corpus_id", "split", "index"]

    def __str__(self) -> str:
        return f"{self.corpus_id}/{self.split}/{self.index}"


class TargetModel(models.Model):
    """A registered model family and lineage root, with its DP base and privacy ledger (DESIGN §6)."""

    name = models.CharField(max_length=200, unique=True)
    architecture = models.CharField(max_length=200)
    tokenizer = models.CharField(max_length=200)
    corpus = models.ForeignKey(TrainingCorpus, on_delete=models.PROTECT, related_name="models")
    training_recipe = models.JSONField(default=dict)
    base_artifact_uri = models.CharField(max_length=500, blank=True)
    base_sha256 = models.CharField(max_length=64, blank=True)
    dp_base_artifact_uri = models.CharField(max_length=500, blank=True)
    dp_base_sha256 = models.CharField(max_length=64, blank=True)
    privacy_ledger = models.JSONField(default=dict, blank=True)
    #: exact-retrain references (DESIGN §7 PrivLeak): none, per_request or calibration_only
    reference_policy = models.CharField(
        max_length=16, default="per_request",
        choices=[("none", "no exact-retrain reference"), ("per_request", "per request forget set"),
                 ("calibration_only", "calibration forget sets only")],
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """An artifact of a model. ``sequence`` n counts published versions (0 = original)."""

    ROLE_PUBLISHED = "published"
    ROLE_CANDIDATE = "candidate"
    ROLE_REFERENCE = "reference"
    model = models.ForeignKey(TargetModel, on_delete=models.PROTECT, related_name="versions")
    role = models.CharField(
        max_length=10, default=ROLE_PUBLISHED,
        choices=[
            (ROLE_PUBLISHED, "published lineage version"),
            (ROLE_CANDIDATE, "candidate, evaluated but not published"),
            (ROLE_REFERENCE, "exact-retrain reference for evaluation"),
        ],
    )
    sequence = models.PositiveIntegerField(null=True, blank=True)
    artifact_uri = models.CharField(max_length=500)
    weights_sha256 = models.CharField(max_length=64)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    produced_by = models.OneToOneField(
        "UnlearningJob", null=True, blank=True, on_delete=models.PROTECT, related_name="produced_version"
    )
    forget_set_sha256 = models.CharField(max_length=64, blank=True, help_text="for reference versions")
    is_serving = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model"], condition=Q(is_serving=True), name="one_serving_version"),
            models.UniqueConstraint(
                fields=["model", "sequence"], condition=Q(sequence__isnull=False), name="version_sequence_unique"
            ),
        ]
        ordering = ["model_id", "id"]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.sequence if self.sequence is not None else self.role}"


class TicketStatus(models.TextChoices):
    SUBMITTED = "submitted"
    IDENTITY_VERIFIED = "identity_verified"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    QUEUED = "queued"
    RUNNING = "running"
    EVALUATING = "evaluating"
    CERTIFIED = "certified"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"
    FAILED = "failed"
    ON_HOLD = "on_hold"


class Jurisdiction(models.TextChoices):
    GDPR = "GDPR"
    CCPA = "CCPA"
    OTHER = "other"


class LegalGround(models.TextChoices):
    """GDPR Art. 17(1)(a)–(f) grounds for erasure."""

    A = "art17_1_a", "Art. 17(1)(a) no longer necessary"
    B = "art17_1_b", "Art. 17(1)(b) consent withdrawn"
    C = "art17_1_c", "Art. 17(1)(c) objection under Art. 21"
    D = "art17_1_d", "Art. 17(1)(d) unlawfully processed"
    E = "art17_1_e", "Art. 17(1)(e) legal obligation"
    F = "art17_1_f", "Art. 17(1)(f) information society services to a child"
    NONE = "", "not stated"


class RemovalTicket(models.Model):
    """An erasure request (GDPR Art. 17 / CCPA §1798.105) by a data owner about one data subject."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tickets")
    subject = models.ForeignKey(DataSubject, on_delete=models.PROTECT, related_name="tickets")
    target_model = models.ForeignKey(
        TargetModel, null=True, blank=True, on_delete=models.PROTECT, related_name="tickets"
    )
    jurisdiction = models.CharField(max_length=8, choices=Jurisdiction.choices, default=Jurisdiction.GDPR)
    legal_ground = models.CharField(max_length=16, choices=LegalGround.choices, blank=True, default="")
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=TicketStatus.choices, default=TicketStatus.SUBMITTED)
    received_at = models.DateTimeField()
    ack_due_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField()
    identity_code_sha256 = models.CharField(max_length=64, blank=True)
    identity_code_expires_at = models.DateTimeField(null=True, blank=True)
    identity_attempts = models.PositiveSmallIntegerField(default=0)
    identity_verified_at = models.DateTimeField(null=True, blank=True)
    verification_level = models.CharField(max_length=20, blank=True)
    resolved_record_ids = models.JSONField(default=list, blank=True, help_text="frozen at approval")
    confirmed_record_ids = models.JSONField(
        default=list, blank=True, help_text="reviewer-confirmed resolution (provenance links + content matches)")
    resolution_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    resolution_confirmed_at = models.DateTimeField(null=True, blank=True)
    forget_set_sha256 = models.CharField(max_length=64, blank=True)
    decision = models.CharField(max_length=10, blank=True)
    decision_reason = models.TextField(blank=True)
    exception_code = models.CharField(max_length=20, blank=True, help_text="GDPR Art. 17(3) exception")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)
    idempotency_body_sha256 = models.CharField(max_length=64, blank=True)
    failure_reason = models.TextField(blank=True)
    # deadline extension (GDPR Art. 12(3): once, up to two further months; CCPA: once, 45 days)
    original_due_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    extension_notified_at = models.DateTimeField(null=True, blank=True)
    due_soon_flagged_at = models.DateTimeField(null=True, blank=True)
    # legal hold: the status to return to is kept so that release resumes the same step
    hold_reason = models.TextField(blank=True)
    status_before_hold = models.CharField(max_length=20, blank=True)
    # GDPR Art. 12(5) evidence: an open ticket for the same subject filed shortly before
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="repeats")
    # data minimisation: text the owner pasted or uploaded, encrypted at rest (Fernet), purged later
    evidence_ciphertext = models.TextField(blank=True)
    evidence_sha256 = models.CharField(max_length=64, blank=True)
    evidence_bytes = models.PositiveIntegerField(default=0)
    evidence_purged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["requester", "idempotency_key"], condition=Q(idempotency_key__isnull=False),
                name="ticket_idempotency_key",
            )
        ]
        ordering = ["due_at", "id"]

    def __str__(self) -> str:
        return f"ticket {self.public_id} ({self.status})"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    EVALUATING = "evaluating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class UnlearningJob(models.Model):
    """One unlearning run of approved tickets against one model version (DESIGN §3, §9)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    model = models.ForeignKey(TargetModel, on_delete=models.PROTECT, related_name="jobs")
    source_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs_from")
    tickets = models.ManyToManyField(RemovalTicket, related_name="jobs", blank=True)
    method = models.CharField(max_length=40)
    hyperparameters = models.JSONField(default=dict, blank=True)
    publish = models.BooleanField(default=True, help_text="False: a comparison run, evaluated only")
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    device_seconds = models.FloatField(null=True, blank=True)
    forget_set_sha256 = models.CharField(max_length=64, blank=True)
    forget_count = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"job {self.public_id} {self.method} ({self.status})"


class EvaluationReport(models.Model):
    """Metrics of one model version on one forget set, with profile and verdicts (DESIGN §7)."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="reports")
    job = models.ForeignKey(UnlearningJob, null=True, blank=True, on_delete=models.PROTECT, related_name="reports")
    role = models.CharField(max_length=12, help_text="original, retrained or unlearned")
    forget_set_sha256 = models.CharField(max_length=64)
    metrics = models.JSONField()
    profile = models.JSONField(default=dict)
    reference_type = models.CharField(max_length=10, blank=True)
    verdicts = models.JSONField(default=dict, blank=True)
    passed = models.BooleanField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class Certificate(models.Model):
    """Ed25519-signed canonical JSON document about a job (DESIGN §8). One per job.

    ``document_type``: ``erasure_certificate`` (schema ``erasure-certificate/1``; only for a job
    whose weights changed) or ``suppression_notice`` (schema ``suppression-notice/1``: the
    weights still hold the data; never an erasure claim). The database checks that the type and
    the payload's schema agree, and that an erasure certificate's weights sha256 before and after
    differ. ``signed_payload`` keeps the exact canonical bytes that were signed (PostgreSQL
    ``jsonb`` rewrites numbers such as 3e+63, which would break the signature).
    """

    ERASURE = "erasure_certificate"
    SUPPRESSION = "suppression_notice"
    DOCUMENT_TYPES = [(ERASURE, "erasure certificate"), (SUPPRESSION, "suppression notice")]
    SCHEMAS = {ERASURE: "erasure-certificate/1", SUPPRESSION: "suppression-notice/1"}

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.OneToOneField(UnlearningJob, on_delete=models.PROTECT, related_name="certificate")
    document_type = models.CharField(max_length=32, choices=DOCUMENT_TYPES, default=ERASURE)
    payload = models.JSONField()
    signed_payload = models.TextField(blank=True, default="")
    signature = models.TextField()
    key_id = models.CharField(max_length=64)
    algorithm = models.CharField(max_length=16, default="Ed25519")
    issued_at = models.DateTimeField()

    class Meta:
        # A stable order for paginated lists (DRF warns on an unordered queryset).
        ordering = ["-issued_at", "id"]
        constraints = [
            models.CheckConstraint(
                name="certificate_document_type_matches_schema",
                condition=(
                    models.Q(document_type="erasure_certificate", payload__schema="erasure-certificate/1")
                    | models.Q(document_type="suppression_notice", payload__schema="suppression-notice/1")
                ),
            ),
            models.CheckConstraint(
                name="erasure_certificate_weights_changed",
                condition=(
                    ~models.Q(document_type="erasure_certificate")
                    | ~models.Q(payload__version_before__weights_sha256=models.F(
                        "payload__version_after__weights_sha256"))
                ),
            ),
        ]

    def as_document(self) -> dict:
        """The signed document as published: ``{payload, signature, key_id, algorithm}``
        (the payload from ``signed_payload`` when present: exactly what was signed)."""
        import json

        return {
            "payload": json.loads(self.signed_payload) if self.signed_payload else self.payload,
            "signature": self.signature,
            "key_id": self.key_id,
            "algorithm": self.algorithm,
        }


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):  # noqa: D102
        raise PermissionError("audit events are append-only")

    def delete(self):  # noqa: D102
        raise PermissionError("audit events are append-only")


class AuditEvent(models.Model):
    """Append-only, hash-chained audit trail: hash = sha256(prev_hash || canonical_json(event)).

    Kept at least 24 months (CCPA regulations §7101). Updates and deletes are refused by the ORM
    here and, on PostgreSQL, by a trigger (migration 0002).
    """

    timestamp = models.DateTimeField()
    actor = models.CharField(max_length=200)
    verb = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")


class WebhookEndpoint(models.Model):
    """A subscriber to event notifications, signed with HMAC-SHA256 over the body (``secret``)."""

    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200)
    events = models.JSONField(default=list, blank=True, help_text="event names; empty = all")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event to one endpoint: the delivery log with attempts and the last outcome."""

    STATUS_PENDING = "pending"
    STATUS_DELIVERED = "delivered"
    STATUS_FAILED = "failed"
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event = models.CharField(max_length=60)
    payload = models.JSONField()
    status = models.CharField(max_length=10, default=STATUS_PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]


class PreparationJob(models.Model):
    """A background onboarding step (issue 14): corpus ingestion, DP base training, exact-retrain reference.

    Same exactly-once rules as :class:`UnlearningJob` (DESIGN §9): claimed with a compare-and-set,
    heartbeats while it runs, re-claimed after a heartbeat timeout, failed after ``JOB_MAX_ATTEMPTS``.
    """

    KIND_CORPUS_INGEST = "corpus_ingest"
    KIND_DP_BASE = "dp_base"
    KIND_REFERENCE = "reference"
    KINDS = [(KIND_CORPUS_INGEST, "corpus ingestion"), (KIND_DP_BASE, "DP base (DP-SGD)"),
             (KIND_REFERENCE, "exact-retrain reference")]
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=KINDS)
    model = models.ForeignKey(TargetModel, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="preparations")
    corpus = models.ForeignKey(TrainingCorpus, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="preparations")
    params = models.JSONField(default=dict, blank=True)
    requested_by = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    device_seconds = models.FloatField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"preparation {self.public_id} {self.kind} ({self.status})"
