"""Mutations of the workflow (HackSoft style: ``<entity>_<verb>``).

Every state change is one call that (a) compare-and-sets the row's status, (b) writes its audit event
in the same transaction and (c) enqueues side effects with ``transaction.on_commit`` (DESIGN §2).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import selectors
from .audit import audit_event_record
from .models import (
    DataSubject,
    JobStatus,
    ModelVersion,
    RemovalTicket,
    TargetModel,
    TicketStatus,
    TrainingCorpus,
    TrainingRecord,
    UnlearningJob,
)
from .workflow import ALLOWED_TRANSITIONS, TransitionError, deadlines_for, sources_for


class ServiceError(Exception):
    """Invalid input to a service (the API answers 400 with the message)."""


class NotFound(ServiceError):
    """A referenced object does not exist (the API answers 400/404 with the message)."""


def _sha256_text(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def forget_set_digest(record_digests: list[str]) -> str:
    """DESIGN §8 forget-set digest: sha256 of the sorted per-record sha256 list, newline-joined."""
    return _sha256_text("\n".join(sorted(record_digests)))


# --- tickets ------------------------------------------------------------------------------------

def _ticket_transition(
    ticket: RemovalTicket, to: str, *, actor, verb: str, fields: dict | None = None, sources: list[str] | None = None
) -> RemovalTicket:
    """Compare-and-set ``ticket.status`` from one of ``sources`` to ``to`` and audit it.

    Must run inside ``transaction.atomic``. Raises :class:`TransitionError` (with the current status)
    when the ticket is no longer in an allowed source status, e.g. a second concurrent approval.
    """
    sources = sources or sources_for(to)
    fields = dict(fields or {})
    before = {"status": ticket.status}
    updated = RemovalTicket.objects.filter(pk=ticket.pk, status__in=sources).update(
        status=to, updated_at=timezone.now(), **fields
    )
    if updated != 1:
        current = RemovalTicket.objects.filter(pk=ticket.pk).values_list("status", flat=True).first()
        raise TransitionError(
            f"cannot move ticket from '{current}' to '{to}' (allowed from: {', '.join(sources)})", current
        )
    ticket.refresh_from_db()
    after = {"status": to}
    after.update({k: v for k, v in fields.items() if isinstance(v, (str, int, float, bool, list)) and k != "identity_code_sha256"})
    audit_event_record(actor=actor, verb=verb, obj=ticket, before=before, after=after)
    return ticket


def subject_lookup(*, public_id: str | None = None, name: str | None = None) -> DataSubject:
    """Find the data subject by public id or by display name / alias (case-insensitive).

    Raises:
        NotFound: no such subject, or the name is ambiguous.
    """
    if public_id:
        try:
            return DataSubject.objects.get(public_id=public_id)
        except (DataSubject.DoesNotExist, ValueError, Exception) as exc:  # invalid UUID too
            raise NotFound(f"unknown data subject '{public_id}'") from exc
    if name:
        matches = selectors.subjects_matching_name(name)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFound(f"unknown data subject '{name}': no person of that name is in any training corpus")
        raise NotFound(f"data subject name '{name}' is ambiguous ({len(matches)} matches); give the subject id")
    raise ServiceError("give the data subject's id or name")


def _identity_code_issue(ticket: RemovalTicket) -> str:
    code = f"{secrets.randbelow(10**6):06d}"
    RemovalTicket.objects.filter(pk=ticket.pk).update(
        identity_code_sha256=_sha256_text(f"{ticket.public_id}:{code}"),
        identity_code_expires_at=timezone.now() + timedelta(seconds=settings.IDENTITY_CODE_TTL_SECONDS),
        identity_attempts=0,
    )
    email = ticket.requester.email
    if email:
        transaction.on_commit(
            lambda: send_mail(
                "Confirm your data-removal request",
                f"Your confirmation code for request {ticket.public_id} is {code}. "
                f"It expires in {settings.IDENTITY_CODE_TTL_SECONDS // 60} minutes.",
                settings.DEFAULT_FROM_EMAIL,
                [email],
            )
        )
    return code


def ticket_create(
    *,
    requester,
    subject: DataSubject,
    jurisdiction: str = "GDPR",
    legal_ground: str = "",
    description: str = "",
    target_model: TargetModel | None = None,
    idempotency_key: str | None = None,
    received_at=None,
) -> tuple[RemovalTicket, bool]:
    """File an erasure request; e-mails a one-time identity code to the requester.

    Returns ``(ticket, created)``; a replay with the same idempotency key returns the original
    ticket with ``created=False``. Deadlines per :func:`workflow.deadlines_for`.
    """
    if idempotency_key:
        existing = RemovalTicket.objects.filter(requester=requester, idempotency_key=idempotency_key).first()
        if existing:
            return existing, False
    received_at = received_at or timezone.now()
    ack_due, due = deadlines_for(jurisdiction, received_at)
    try:
        with transaction.atomic():
            ticket = RemovalTicket.objects.create(
                requester=requester,
                subject=subject,
                target_model=target_model,
                jurisdiction=jurisdiction,
                legal_ground=legal_ground,
                description=description,
                received_at=received_at,
                ack_due_at=ack_due,
                due_at=due,
                idempotency_key=idempotency_key,
            )
            audit_event_record(
                actor=requester, verb="ticket.submitted", obj=ticket,
                after={"status": ticket.status, "subject": str(subject.public_id), "jurisdiction": jurisdiction,
                       "due_at": due.isoformat()},
            )
            _identity_code_issue(ticket)
    except IntegrityError:
        existing = RemovalTicket.objects.filter(requester=requester, idempotency_key=idempotency_key).first()
        if existing:
            return existing, False
        raise
    return ticket, True


def ticket_verify_identity(*, ticket: RemovalTicket, code: str, actor) -> RemovalTicket:
    """Check the one-time code (TTL and attempt limit) and move to ``identity_verified``.

    Raises:
        ServiceError: wrong, expired or exhausted code.
        TransitionError: the ticket is not awaiting verification.
    """
    with transaction.atomic():
        locked = RemovalTicket.objects.select_for_update().get(pk=ticket.pk)
        if locked.status != TicketStatus.SUBMITTED:
            raise TransitionError(f"ticket is '{locked.status}', not awaiting identity verification", locked.status)
        if locked.identity_attempts >= settings.IDENTITY_CODE_MAX_ATTEMPTS:
            raise ServiceError("too many wrong codes; ask for a new code")
        if not locked.identity_code_expires_at or locked.identity_code_expires_at < timezone.now():
            raise ServiceError("the code has expired; ask for a new code")
        expected = locked.identity_code_sha256
        if not hmac.compare_digest(expected, _sha256_text(f"{locked.public_id}:{code.strip()}")):
            RemovalTicket.objects.filter(pk=locked.pk).update(identity_attempts=locked.identity_attempts + 1)
            wrong = True  # the failed attempt is committed before we raise
        else:
            wrong = False
    if wrong:
        raise ServiceError("wrong code")
    with transaction.atomic():
        return _ticket_transition(
            ticket, TicketStatus.IDENTITY_VERIFIED, actor=actor, verb="ticket.identity_verified",
            fields={"identity_verified_at": timezone.now(), "verification_level": "email_code",
                    "identity_code_sha256": ""},
        )


def ticket_start_review(*, ticket: RemovalTicket, reviewer) -> RemovalTicket:
    """A legal reviewer takes the ticket (``identity_verified`` → ``in_review``)."""
    with transaction.atomic():
        return _ticket_transition(
            ticket, TicketStatus.IN_REVIEW, actor=reviewer, verb="ticket.review_started",
            fields={"reviewed_by": reviewer},
        )


def ticket_approve(
    *,
    ticket: RemovalTicket,
    approver,
    method: str = "dp2",
    hyperparameters: dict | None = None,
    record_ids: list[int] | None = None,
    target_model: TargetModel | None = None,
) -> UnlearningJob:
    """Approve, freeze the forget set, create the unlearning job and queue it on commit.

    ``record_ids`` is the reviewer-confirmed forget set; ``None`` takes the proposed resolution.

    Raises:
        ServiceError: empty forget set, records outside the model's corpus or already forgotten,
            unknown method, no target model.
        TransitionError: the ticket is not in review (e.g. approved twice).
    """
    from unlearning_engine import available_methods

    ticket.refresh_from_db()
    if ticket.status not in sources_for(TicketStatus.APPROVED):
        raise TransitionError(f"cannot approve a ticket that is '{ticket.status}' (it must be in review)",
                              ticket.status)
    if method not in available_methods():
        raise ServiceError(f"unknown method '{method}'; available: {', '.join(available_methods())}")
    model = target_model or ticket.target_model or selectors.model_default()
    if model is None:
        raise ServiceError("no target model registered")
    if record_ids is None:
        record_ids = [r.pk for r in selectors.ticket_resolution(ticket=ticket, model=model)]
    record_ids = sorted(set(int(r) for r in record_ids))
    if not record_ids:
        raise ServiceError("the forget set is empty: no training record of this subject was found")
    records = list(
        TrainingRecord.objects.filter(pk__in=record_ids, corpus=model.corpus, split=TrainingRecord.SPLIT_TRAIN)
    )
    if len(records) != len(record_ids):
        missing = sorted(set(record_ids) - {r.pk for r in records})
        raise ServiceError(f"records {missing[:10]} are not training records of model '{model.name}'")
    already = [r.pk for r in records if r.forgotten_by_id]
    if already:
        raise ServiceError(f"records {already[:10]} were already forgotten")
    digest = forget_set_digest([r.sha256 for r in records])
    source = selectors.model_serving_version(model)
    if source is None:
        raise ServiceError(f"model '{model.name}' has no serving version")
    with transaction.atomic():
        _ticket_transition(
            ticket, TicketStatus.APPROVED, actor=approver, verb="ticket.approved",
            fields={"approved_by": approver, "decision": "approved", "resolved_record_ids": record_ids,
                    "forget_set_sha256": digest, "target_model": model},
        )
        job = UnlearningJob.objects.create(
            model=model, source_version=source, method=method, hyperparameters=hyperparameters or {},
            forget_set_sha256=digest, forget_count=len(record_ids),
        )
        job.tickets.add(ticket)
        audit_event_record(
            actor=approver, verb="job.created", obj=job,
            after={"method": method, "hyperparameters": job.hyperparameters, "forget_count": len(record_ids),
                   "forget_set_sha256": digest, "source_version": source.pk},
        )
        _ticket_transition(ticket, TicketStatus.QUEUED, actor=approver, verb="ticket.queued")
        _job_enqueue_on_commit(job)
    return job


def ticket_deny(*, ticket: RemovalTicket, actor, exception_code: str, reason: str) -> RemovalTicket:
    """Deny with a GDPR Art. 17(3) exception code and a reason (both required)."""
    if not exception_code or not reason:
        raise ServiceError("a denial needs an exception code (GDPR Art. 17(3)) and a reason")
    with transaction.atomic():
        return _ticket_transition(
            ticket, TicketStatus.DENIED, actor=actor, verb="ticket.denied",
            fields={"decision": "denied", "exception_code": exception_code, "decision_reason": reason},
        )


def ticket_withdraw(*, ticket: RemovalTicket, actor) -> RemovalTicket:
    """The owner withdraws the request (allowed until the job runs)."""
    with transaction.atomic():
        return _ticket_transition(ticket, TicketStatus.WITHDRAWN, actor=actor, verb="ticket.withdrawn")


# --- jobs ---------------------------------------------------------------------------------------

def _job_enqueue_on_commit(job: UnlearningJob) -> None:
    from .tasks import job_run_task

    transaction.on_commit(lambda: job_run_task.delay(job.pk))


def job_create_comparison(*, ticket: RemovalTicket, actor, method: str, hyperparameters: dict | None = None) -> UnlearningJob:
    """Run another method on an approved ticket's frozen forget set, evaluated but never published.

    Raises:
        ServiceError: the ticket has no frozen forget set, or the method is unknown.
    """
    from unlearning_engine import available_methods

    if method not in available_methods():
        raise ServiceError(f"unknown method '{method}'")
    if not ticket.resolved_record_ids or ticket.target_model_id is None:
        raise ServiceError("the ticket has no approved forget set")
    first_job = ticket.jobs.order_by("id").first()
    source = first_job.source_version if first_job else selectors.model_serving_version(ticket.target_model)
    with transaction.atomic():
        job = UnlearningJob.objects.create(
            model=ticket.target_model, source_version=source, method=method,
            hyperparameters=hyperparameters or {}, publish=False,
            forget_set_sha256=ticket.forget_set_sha256, forget_count=len(ticket.resolved_record_ids),
        )
        job.tickets.add(ticket)
        audit_event_record(actor=actor, verb="job.comparison_created", obj=job,
                           after={"method": method, "publish": False})
        _job_enqueue_on_commit(job)
    return job


def job_claim(*, job_id: int, worker: str) -> UnlearningJob | None:
    """Compare-and-set ``queued`` → ``running``; ``None`` when another delivery already claimed it."""
    with transaction.atomic():
        now = timezone.now()
        claimed = UnlearningJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, worker=worker, started_at=now, heartbeat_at=now,
        )
        if not claimed:
            return None
        job = UnlearningJob.objects.get(pk=job_id)
        UnlearningJob.objects.filter(pk=job_id).update(attempts=job.attempts + 1)
        job.attempts += 1
        audit_event_record(actor=f"worker:{worker}", verb="job.started", obj=job,
                           before={"status": JobStatus.QUEUED}, after={"status": JobStatus.RUNNING, "attempt": job.attempts})
        if job.publish:
            for ticket in job.tickets.all():
                _ticket_transition(ticket, TicketStatus.RUNNING, actor=f"worker:{worker}", verb="ticket.running")
    return job


def job_progress_update(*, job_id: int, progress: dict) -> None:
    """Store progress (step, total, loss, ETA) and the heartbeat; not audited (not a state change)."""
    UnlearningJob.objects.filter(pk=job_id).update(progress=progress, heartbeat_at=timezone.now())


def job_mark_evaluating(*, job: UnlearningJob, result: dict) -> UnlearningJob:
    with transaction.atomic():
        updated = UnlearningJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.EVALUATING, result=result, heartbeat_at=timezone.now()
        )
        if not updated:
            raise TransitionError("job is no longer running", job.status)
        audit_event_record(actor="system", verb="job.evaluating", obj=job,
                           before={"status": JobStatus.RUNNING}, after={"status": JobStatus.EVALUATING})
        if job.publish:
            for ticket in job.tickets.all():
                _ticket_transition(ticket, TicketStatus.EVALUATING, actor="system", verb="ticket.evaluating")
    job.refresh_from_db()
    return job


def job_fail(*, job: UnlearningJob, reason: str) -> UnlearningJob:
    """Mark the job (and, for publishing jobs, its tickets) ``failed`` with the reason."""
    with transaction.atomic():
        before = UnlearningJob.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        updated = UnlearningJob.objects.filter(
            pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.EVALUATING]
        ).update(status=JobStatus.FAILED, error=reason[:4000], finished_at=timezone.now())
        if not updated:
            return UnlearningJob.objects.get(pk=job.pk)
        audit_event_record(actor="system", verb="job.failed", obj=job, before={"status": before},
                           after={"status": JobStatus.FAILED, "error": reason[:500]})
        if job.publish:
            for ticket in job.tickets.exclude(status__in=[TicketStatus.FAILED, TicketStatus.WITHDRAWN]):
                if TicketStatus.FAILED in ALLOWED_TRANSITIONS.get(ticket.status, set()):
                    _ticket_transition(ticket, TicketStatus.FAILED, actor="system", verb="ticket.failed",
                                       fields={"failure_reason": reason[:4000]})
    job.refresh_from_db()
    return job


def job_finish(
    *,
    job: UnlearningJob,
    artifact_uri: str,
    weights_sha256: str,
    reports: dict,
    verdicts: dict,
    device_seconds: float,
    certificate_builder=None,
):
    """Record the outcome of an evaluated job in one transaction.

    Publishing job whose verdict passed: the new ModelVersion becomes serving (sequence n+1), the
    forgotten records get their tombstone, the certificate is issued and the tickets are certified.
    Comparison job: a ``candidate`` version and the reports, nothing published.
    ``reports`` maps role ("original", "retrained", "unlearned") to (ModelVersion | None, report dict).
    """
    from .models import Certificate, EvaluationReport

    passed = bool(verdicts.get("passed"))
    with transaction.atomic():
        locked = UnlearningJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != JobStatus.EVALUATING:
            raise TransitionError(f"job is '{locked.status}', not evaluating", locked.status)
        publish = locked.publish and passed
        source = locked.source_version
        version_kwargs = dict(
            model=locked.model, artifact_uri=artifact_uri, weights_sha256=weights_sha256, parent=source,
            produced_by=locked,
        )
        if publish:
            current = ModelVersion.objects.select_for_update().filter(model=locked.model, is_serving=True).first()
            last_seq = max(
                ModelVersion.objects.filter(model=locked.model, sequence__isnull=False).values_list("sequence", flat=True),
                default=0,
            )
            if current:
                ModelVersion.objects.filter(pk=current.pk).update(is_serving=False)
            version = ModelVersion.objects.create(
                role=ModelVersion.ROLE_PUBLISHED, sequence=last_seq + 1, is_serving=True, **version_kwargs
            )
            audit_event_record(actor="system", verb="model_version.published", obj=version,
                               before={"serving": current.pk if current else None},
                               after={"serving": version.pk, "sequence": version.sequence, "weights_sha256": weights_sha256})
        else:
            version = ModelVersion.objects.create(role=ModelVersion.ROLE_CANDIDATE, **version_kwargs)
        for role, (mv, report) in reports.items():
            EvaluationReport.objects.create(
                model_version=version if role == "unlearned" else mv, job=locked, role=role,
                forget_set_sha256=locked.forget_set_sha256, metrics=report.get("metrics", {}),
                profile=report.get("profile", {}),
                reference_type=verdicts.get("privleak", {}).get("reference_type", "") if role == "unlearned" else "",
                verdicts=verdicts if role == "unlearned" else {},
                passed=passed if role == "unlearned" else None,
            )
        status = JobStatus.SUCCEEDED if (passed or not locked.publish) else JobStatus.FAILED
        error = "" if status == JobStatus.SUCCEEDED else "evaluation verdict failed: " + ", ".join(
            c["name"] for c in verdicts.get("checks", []) if not c.get("passed")
        )
        UnlearningJob.objects.filter(pk=locked.pk).update(
            status=status, finished_at=timezone.now(), device_seconds=device_seconds, error=error
        )
        audit_event_record(actor="system", verb="job.finished", obj=locked, before={"status": JobStatus.EVALUATING},
                           after={"status": status, "verdict_passed": passed, "version": version.pk})
        certificate = None
        if publish:
            record_ids = set()
            for ticket in locked.tickets.all():
                record_ids.update(ticket.resolved_record_ids)
            now = timezone.now()
            TrainingRecord.objects.filter(pk__in=record_ids, forgotten_by__isnull=True).update(
                forgotten_by=locked, forgotten_at=now
            )
            audit_event_record(actor="system", verb="records.forgotten", obj=locked,
                               after={"count": len(record_ids), "forget_set_sha256": locked.forget_set_sha256})
            locked.refresh_from_db()
            document = certificate_builder(job=locked, version=version, verdicts=verdicts, reports=reports)
            certificate = Certificate.objects.create(
                public_id=document["payload"]["certificate_id"], job=locked, payload=document["payload"], signature=document["signature"],
                key_id=document["key_id"], algorithm=document["algorithm"],
                issued_at=now,
            )
            audit_event_record(actor="system", verb="certificate.issued", obj=certificate,
                               after={"job": str(locked.public_id), "key_id": certificate.key_id})
            for ticket in locked.tickets.all():
                _ticket_transition(ticket, TicketStatus.CERTIFIED, actor="system", verb="ticket.certified")
        elif locked.publish:
            for ticket in locked.tickets.all():
                _ticket_transition(ticket, TicketStatus.FAILED, actor="system", verb="ticket.failed",
                                   fields={"failure_reason": error})
    return version, certificate


# --- models and corpora ---------------------------------------------------------------------------

def model_register(
    *,
    actor,
    name: str,
    corpus: TrainingCorpus,
    architecture: str,
    tokenizer: str,
    training_recipe: dict,
    artifact_uri: str,
    weights_sha256: str,
    base_artifact_uri: str = "",
    base_sha256: str = "",
    dp_base_artifact_uri: str = "",
    dp_base_sha256: str = "",
    privacy_ledger: dict | None = None,
) -> TargetModel:
    """Register a target model with its original version (sequence 0, serving)."""
    with transaction.atomic():
        model = TargetModel.objects.create(
            name=name, corpus=corpus, architecture=architecture, tokenizer=tokenizer,
            training_recipe=training_recipe, base_artifact_uri=base_artifact_uri, base_sha256=base_sha256,
            dp_base_artifact_uri=dp_base_artifact_uri, dp_base_sha256=dp_base_sha256,
            privacy_ledger=privacy_ledger or {},
        )
        version = ModelVersion.objects.create(
            model=model, role=ModelVersion.ROLE_PUBLISHED, sequence=0, is_serving=True,
            artifact_uri=artifact_uri, weights_sha256=weights_sha256,
        )
        audit_event_record(actor=actor, verb="model.registered", obj=model,
                           after={"name": name, "version": version.pk, "weights_sha256": weights_sha256,
                                  "dp_base_sha256": dp_base_sha256, "privacy_ledger": privacy_ledger or {}})
    return model


def model_register_reference(
    *, actor, model: TargetModel, artifact_uri: str, weights_sha256: str, forget_set_sha256: str
) -> ModelVersion:
    """Register an exact-retrain reference model for a forget set (PrivLeak reference, DESIGN §7)."""
    with transaction.atomic():
        version = ModelVersion.objects.create(
            model=model, role=ModelVersion.ROLE_REFERENCE, artifact_uri=artifact_uri,
            weights_sha256=weights_sha256, forget_set_sha256=forget_set_sha256,
        )
        audit_event_record(actor=actor, verb="model_version.reference_registered", obj=version,
                           after={"forget_set_sha256": forget_set_sha256, "weights_sha256": weights_sha256})
    return version
