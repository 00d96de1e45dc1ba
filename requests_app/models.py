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
    KIND_IMAGE = "image"
    KIND_TABULAR = "tabular"
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=[(KIND_QA, "question/answer"), (KIND_TEXT, "plain text"),
                                                   (KIND_IMAGE, "images (flattened pixels) + label"),
                                                   (KIND_TABULAR, "feature rows + label")])
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
    #: classifier records (issue 19): the feature row (flattened pixels or tabular values) and class label
    features = models.JSONField(null=True, blank=True)
    label = models.IntegerField(null=True, blank=True)
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

    @property
    def has_content(self) -> bool:
        """False once the record's content (text, QA or features) was purged."""
        return bool(self.question or self.text or self.features is not None)


class TargetModel(models.Model):
    """A registered model family and lineage root, with its DP base and privacy ledger (DESIGN §6)."""

    FAMILY_CHOICES = [("causal_lm", "causal language model"), ("image_classifier", "image classifier"),
                      ("tabular_classifier", "tabular classifier")]
    name = models.CharField(max_length=200, unique=True)
    #: model family (DESIGN §11): selects the methods and the evaluation profile
    family = models.CharField(max_length=24, choices=FAMILY_CHOICES, default="causal_lm")
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
    """Ticket states (DESIGN §4). The labels are the staff wording; owners read
    ``portal.presentation.OWNER_STATUS_LABELS``."""

    SUBMITTED = "submitted", "Awaiting identity code"
    IDENTITY_VERIFIED = "identity_verified", "Identity confirmed"
    IN_REVIEW = "in_review", "In legal review"
    APPROVED = "approved", "Approved"
    QUEUED = "queued", "Removal queued"
    RUNNING = "running", "Removal running"
    EVALUATING = "evaluating", "Checking the removal"
    CERTIFIED = "certified", "Certified"
    DENIED = "denied", "Declined"
    WITHDRAWN = "withdrawn", "Withdrawn"
    FAILED = "failed", "Removal failed its checks"
    ON_HOLD = "on_hold", "On legal hold"
    #: answered: the person the request names is not in any training data (issue 21 item 3)
    NO_DATA = "no_data", "Answered: no data held"


class Jurisdiction(models.TextChoices):
    GDPR = "GDPR", "GDPR (EU, EEA, UK)"
    CCPA = "CCPA", "CCPA (California)"
    OTHER = "other", "Other"


class DenialException(models.TextChoices):
    """Why an erasure request may be declined, by law (offered per jurisdiction by
    :func:`requests_app.legal.denial_exceptions_for`). Labels paraphrase GDPR Art. 17(3)(a)–(e),
    Art. 12(5) and CCPA Civ. Code §1798.105(d)(1)–(9)."""

    GDPR_A = "art17_3_a", "GDPR Art. 17(3)(a): freedom of expression and information"
    GDPR_B = "art17_3_b", "GDPR Art. 17(3)(b): a legal obligation, or a task in the public interest"
    GDPR_C = "art17_3_c", "GDPR Art. 17(3)(c): public interest in public health"
    GDPR_D = "art17_3_d", "GDPR Art. 17(3)(d): archiving in the public interest, research or statistics"
    GDPR_E = "art17_3_e", "GDPR Art. 17(3)(e): establishing, exercising or defending legal claims"
    CCPA_1 = "ccpa_105_d_1", "CCPA §1798.105(d)(1): completing the transaction or contract with the consumer"
    CCPA_2 = "ccpa_105_d_2", "CCPA §1798.105(d)(2): security and integrity"
    CCPA_3 = "ccpa_105_d_3", "CCPA §1798.105(d)(3): debugging errors in existing functionality"
    CCPA_4 = "ccpa_105_d_4", "CCPA §1798.105(d)(4): free speech or another right provided by law"
    CCPA_5 = "ccpa_105_d_5", "CCPA §1798.105(d)(5): the California Electronic Communications Privacy Act"
    CCPA_6 = "ccpa_105_d_6", "CCPA §1798.105(d)(6): public or peer-reviewed research the consumer consented to"
    CCPA_7 = "ccpa_105_d_7", "CCPA §1798.105(d)(7): internal uses the consumer would reasonably expect"
    CCPA_8 = "ccpa_105_d_8", "CCPA §1798.105(d)(8): a legal obligation"
    CCPA_9 = "ccpa_105_d_9", "CCPA §1798.105(d)(9): other internal, lawful uses compatible with the context"
    UNVERIFIED = "unverified", "The requester's identity could not be verified"
    MANIFESTLY_UNFOUNDED = "manifestly_unfounded", "Manifestly unfounded or excessive (GDPR Art. 12(5))"


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
    #: None: the service found nobody of the name given (issue 21 item 3); the request is filed anyway
    #: and a reviewer links the subject by hand or confirms that no data is held
    subject = models.ForeignKey(DataSubject, null=True, blank=True, on_delete=models.PROTECT, related_name="tickets")
    #: the name the owner typed when no data subject matched it (kept for the reviewer's search)
    subject_name_given = models.CharField(max_length=300, blank=True)
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
    exception_code = models.CharField(max_length=20, blank=True, choices=DenialException.choices,
                                      help_text="legal exception of a denial (GDPR Art. 17(3) / CCPA §1798.105(d))")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    #: the legal team member working the request (the queue's "assignee", issue 21 item 16)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assigned_tickets"
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
        # the duplicate check at submission: the earliest open ticket of the subject in the window
        indexes = [models.Index(fields=["subject", "received_at"], name="ticket_subject_received")]
        ordering = ["due_at", "id"]

    def __str__(self) -> str:
        return f"ticket {self.public_id} ({self.status})"

    @property
    def subject_label(self) -> str:
        """The data subject's name, or the name given when nobody was found (issue 21 item 3)."""
        return self.subject.display_name if self.subject_id else self.subject_name_given


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    EVALUATING = "evaluating", "Evaluating"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


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
    #: sha256 of the evaluation manifest the metrics were computed on (issue 23; ``evaluation.manifest``)
    manifest_sha256 = models.CharField(max_length=64, blank=True, default="")
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
    transparency = models.JSONField(null=True, blank=True, help_text=(
        "audit-inclusion/1 block: the signed tree head and the inclusion proof of the issuance event"))

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
        (the payload from ``signed_payload`` when present: exactly what was signed), plus
        ``transparency`` (the audit-log inclusion proof of its issuance event) when it has one."""
        import json

        document = {
            "payload": json.loads(self.signed_payload) if self.signed_payload else self.payload,
            "signature": self.signature,
            "key_id": self.key_id,
            "algorithm": self.algorithm,
        }
        if self.transparency:
            document["transparency"] = self.transparency
        return document


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):  # noqa: D102
        raise PermissionError("audit events are append-only")

    def delete(self):  # noqa: D102
        raise PermissionError("audit events are append-only")


class AuditEvent(models.Model):
    """Append-only audit trail, sealed into a verifiable log (``requests_app.audit_log``).

    ``id`` is taken from the table's sequence inside the mutation's transaction; ``hash`` is the
    event's RFC 6962 leaf hash, ``SHA-256(0x00 || canonical_json(id, timestamp, actor, verb,
    object_type, object_id, before, after))`` (``evaluation.audit_log``). ``prev_hash`` is empty for
    events recorded since migration 0008; older events keep their hash chain
    (``hash = sha256(prev_hash || canonical_json(event))``). Kept at least 24 months (CCPA regulations
    §7101). Updates and deletes are refused by the ORM here and, on PostgreSQL, by a trigger
    (migration 0002).
    """

    timestamp = models.DateTimeField()
    actor = models.CharField(max_length=200)
    verb = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("audit events are append-only")
        kwargs["force_insert"] = True  # the id comes from the sequence before the insert
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
    KIND_CALIBRATION = "calibration"
    KINDS = [(KIND_CORPUS_INGEST, "corpus ingestion"), (KIND_DP_BASE, "DP base (DP-SGD)"),
             (KIND_REFERENCE, "exact-retrain reference"), (KIND_CALIBRATION, "hyper-parameter calibration")]
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


class MethodCalibration(models.Model):
    """The calibrated hyper-parameters of one method on one model (issue 15 item 1): the defaults of
    an approval of ``method`` on ``model`` that gives no hyper-parameters of its own.

    Written only by ``services.calibration`` in the transaction that finishes the calibration job
    (audited ``model.method_calibrated``); a later calibration replaces the values.
    """

    model = models.ForeignKey(TargetModel, on_delete=models.PROTECT, related_name="calibrations")
    method = models.CharField(max_length=40)
    hyperparameters = models.JSONField(help_text="the chosen trial's overrides (merged over the model's recipe)")
    calibration = models.ForeignKey(PreparationJob, on_delete=models.PROTECT, related_name="+")
    summary = models.JSONField(default=dict, blank=True, help_text="the chosen trial's metrics, verdict and cost")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_id", "method"]
        constraints = [models.UniqueConstraint(fields=["model", "method"], name="method_calibration_model_method")]

    def __str__(self) -> str:
        return f"calibration of {self.method} on model {self.model_id}"


# the audit log's Merkle leaves and signed tree heads (issue 17) live in their own module
from .audit_models import AuditLeaf, SignedTreeHead  # noqa: E402,F401
from .notice_models import OwnerNotice  # noqa: E402,F401  (the owner's outcome e-mails, issue 21)
