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
from django.db.models import Q
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


class IdempotencyConflict(ServiceError):
    """An idempotency key replayed with a different body (the API answers 422)."""


class PayloadTooLarge(ServiceError):
    """Uploaded or pasted evidence above the limit (the API answers 413 with the limit)."""


class PermissionDeniedError(ServiceError):
    """A policy forbids this actor (e.g. four-eyes: the reviewer may not approve; API 403)."""


TERMINAL_STATUSES = (TicketStatus.CERTIFIED, TicketStatus.DENIED, TicketStatus.WITHDRAWN)


def _fernet():
    from cryptography.fernet import Fernet

    return Fernet(settings.EVIDENCE_ENCRYPTION_KEY.encode())


def encrypt_text(text: str) -> str:
    """Fernet token (AES-128-CBC + HMAC-SHA256) of ``text`` with the key from settings."""
    return _fernet().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt_text(token: str) -> str:
    """Inverse of :func:`encrypt_text`; raises ``cryptography.fernet.InvalidToken`` on a wrong key."""
    return _fernet().decrypt(token.encode("ascii")).decode("utf-8")


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
    webhook_event_emit(event=verb, payload={"ticket": str(ticket.public_id), "status": to, "previous": before["status"]})
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
    request_body_sha256: str = "",
    received_at=None,
    evidence_text: str = "",
) -> tuple[RemovalTicket, bool]:
    """File an erasure request; e-mails a one-time identity code to the requester.

    Returns ``(ticket, created)``; a replay with the same idempotency key returns the original
    ticket with ``created=False``. Deadlines per :func:`workflow.deadlines_for`. An open ticket for
    the same subject filed within ``DUPLICATE_WINDOW_DAYS`` is linked as ``duplicate_of`` (evidence
    for GDPR Art. 12(5)); the new ticket is still filed. ``evidence_text`` (pasted or uploaded by the
    owner) is stored encrypted with Fernet and only its digest survives the purge.

    Raises:
        IdempotencyConflict: the key was used before with another request body.
        ServiceError: evidence text above ``EVIDENCE_MAX_BYTES``.
    """
    if idempotency_key:
        existing = RemovalTicket.objects.filter(requester=requester, idempotency_key=idempotency_key).first()
        if existing:
            if request_body_sha256 and existing.idempotency_body_sha256 not in ("", request_body_sha256):
                raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
            return existing, False
    evidence = evidence_text.encode("utf-8") if evidence_text else b""
    if len(evidence) > settings.EVIDENCE_MAX_BYTES:
        raise PayloadTooLarge(
            f"the attached text is {len(evidence)} bytes; the limit is {settings.EVIDENCE_MAX_BYTES} bytes"
        )
    received_at = received_at or timezone.now()
    ack_due, due = deadlines_for(jurisdiction, received_at)
    window_start = timezone.now() - timedelta(days=settings.DUPLICATE_WINDOW_DAYS)
    duplicate_of = (
        RemovalTicket.objects.filter(subject=subject, received_at__gte=window_start)
        .exclude(status__in=TERMINAL_STATUSES).order_by("received_at").first()
    )
    try:
        with transaction.atomic():
            ticket = RemovalTicket.objects.create(
                duplicate_of=duplicate_of,
                idempotency_body_sha256=request_body_sha256,
                evidence_ciphertext=encrypt_text(evidence_text) if evidence_text else "",
                evidence_sha256=hashlib.sha256(evidence).hexdigest() if evidence else "",
                evidence_bytes=len(evidence),
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
                       "due_at": due.isoformat(),
                       "duplicate_of": str(duplicate_of.public_id) if duplicate_of else None},
            )
            webhook_event_emit(event="ticket.submitted", payload={"ticket": str(ticket.public_id),
                                                                  "status": ticket.status})
            _identity_code_issue(ticket)
    except IntegrityError:
        existing = RemovalTicket.objects.filter(requester=requester, idempotency_key=idempotency_key).first()
        if existing:
            return existing, False
        raise
    return ticket, True


def ticket_resend_code(*, ticket: RemovalTicket, actor) -> None:
    """Issue a fresh identity code (resets the attempt counter); only while awaiting verification."""
    with transaction.atomic():
        locked = RemovalTicket.objects.select_for_update().get(pk=ticket.pk)
        if locked.status != TicketStatus.SUBMITTED:
            raise TransitionError(f"ticket is '{locked.status}', not awaiting identity verification", locked.status)
        _identity_code_issue(locked)
        audit_event_record(actor=actor, verb="ticket.code_resent", obj=locked)


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
    if settings.FOUR_EYES_APPROVAL and ticket.reviewed_by_id and ticket.reviewed_by_id == approver.pk:
        raise PermissionDeniedError("four-eyes policy: the reviewer of a ticket cannot also approve it")
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


def _tickets_advance(job: UnlearningJob, to: str, *, actor, verb: str) -> None:
    """Move the job's tickets to ``to``; tickets already there (a re-claimed job) are left alone."""
    for ticket in job.tickets.all():
        if ticket.status != to:
            _ticket_transition(ticket, to, actor=actor, verb=verb)


def job_claim(*, job_id: int, worker: str) -> UnlearningJob | None:
    """Claim a job for this worker with a compare-and-set; ``None`` when there is nothing to do.

    ``queued`` → ``running``; also reclaims a ``running``/``evaluating`` job whose heartbeat is older
    than ``JOB_HEARTBEAT_TIMEOUT`` (its worker died; the task was redelivered or re-queued). A live
    duplicate delivery, or a job already finished, is a no-op. After ``JOB_MAX_ATTEMPTS`` claims the
    job is failed instead of run again.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        job = UnlearningJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        reclaim = job.status in (JobStatus.RUNNING, JobStatus.EVALUATING) and (
            job.heartbeat_at is None or job.heartbeat_at < stale
        )
        if job.status != JobStatus.QUEUED and not reclaim:
            return None
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            reason = f"gave up after {job.attempts} attempts (the worker was lost each time)"
            fail = True
        else:
            fail = False
            before = job.status
            UnlearningJob.objects.filter(pk=job_id).update(
                status=JobStatus.RUNNING, worker=worker, started_at=now, heartbeat_at=now,
                attempts=job.attempts + 1,
            )
            job.refresh_from_db()
            audit_event_record(actor=f"worker:{worker}", verb="job.started", obj=job, before={"status": before},
                               after={"status": JobStatus.RUNNING, "attempt": job.attempts, "reclaimed": reclaim})
            if job.publish:
                _tickets_advance(job, TicketStatus.RUNNING, actor=f"worker:{worker}", verb="ticket.running")
    if fail:
        job_fail(job=job, reason=reason)
        return None
    return job


def job_heartbeat(*, job_id: int) -> bool:
    """Record that the job's worker is alive; returns False when the job was cancelled."""
    UnlearningJob.objects.filter(pk=job_id, status__in=[JobStatus.RUNNING, JobStatus.EVALUATING]).update(
        heartbeat_at=timezone.now()
    )
    return UnlearningJob.objects.filter(pk=job_id).values_list("status", flat=True).first() != JobStatus.CANCELLED


def jobs_requeue_stale(*, now=None) -> dict:
    """Re-queue jobs whose worker vanished (no heartbeat for ``JOB_HEARTBEAT_TIMEOUT``), or fail them
    after ``JOB_MAX_ATTEMPTS`` (DESIGN §9); re-send queued jobs untouched for
    ``JOB_QUEUED_RESEND_SECONDS``. Returns ``{"requeued": n, "failed": n[, "resent": n]}``."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    out = {"requeued": 0, "failed": 0}
    candidates = UnlearningJob.objects.filter(status__in=[JobStatus.RUNNING, JobStatus.EVALUATING]).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
    )
    # A queued job whose broker message may have been lost (e.g. Redis restarted without
    # persistence) is sent again; a duplicate delivery is a no-op thanks to the claim.
    resend_before = now - timedelta(seconds=settings.JOB_QUEUED_RESEND_SECONDS)
    for job in UnlearningJob.objects.filter(status=JobStatus.QUEUED).filter(
        Q(heartbeat_at__lt=resend_before) | Q(heartbeat_at__isnull=True, queued_at__lt=resend_before)
    ):
        with transaction.atomic():
            if UnlearningJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(heartbeat_at=now):
                _job_enqueue_on_commit(job)
                out["resent"] = out.get("resent", 0) + 1
    for job in candidates:
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            job_fail(job=job, reason=f"gave up after {job.attempts} attempts (no heartbeat for "
                                     f"{settings.JOB_HEARTBEAT_TIMEOUT} s each time)")
            out["failed"] += 1
            continue
        with transaction.atomic():
            moved = UnlearningJob.objects.filter(pk=job.pk, status=job.status, heartbeat_at=job.heartbeat_at).update(
                status=JobStatus.QUEUED, worker="", heartbeat_at=now
            )
            if not moved:
                continue
            audit_event_record(actor="system", verb="job.requeued", obj=job, before={"status": job.status},
                               after={"status": JobStatus.QUEUED, "reason": "no heartbeat", "attempts": job.attempts})
            _job_enqueue_on_commit(job)
            out["requeued"] += 1
    return out


def job_cancel(*, job: UnlearningJob, actor, reason: str = "cancelled by an operator") -> UnlearningJob:
    """Cancel a queued or running job; its tickets become ``failed`` (retryable). The worker stops
    at its next heartbeat or progress report."""
    with transaction.atomic():
        locked = UnlearningJob.objects.select_for_update().get(pk=job.pk)
        if locked.status not in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.EVALUATING):
            raise TransitionError(f"job is '{locked.status}'", locked.status)
        UnlearningJob.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, error=reason,
                                                       finished_at=timezone.now())
        audit_event_record(actor=actor, verb="job.cancelled", obj=locked, before={"status": locked.status},
                           after={"status": JobStatus.CANCELLED, "reason": reason})
        if locked.publish:
            for ticket in locked.tickets.all():
                if TicketStatus.FAILED in ALLOWED_TRANSITIONS.get(ticket.status, set()):
                    _ticket_transition(ticket, TicketStatus.FAILED, actor=actor, verb="ticket.failed",
                                       fields={"failure_reason": reason})
    locked.refresh_from_db()
    return locked


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
            _tickets_advance(job, TicketStatus.EVALUATING, actor="system", verb="ticket.evaluating")
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
            webhook_event_emit(event="certificate.issued", payload={
                "certificate": str(certificate.public_id), "job": str(locked.public_id),
                "tickets": [str(t.public_id) for t in locked.tickets.all()]})
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


# --- lifecycle: holds, extensions, retries, deadlines ------------------------------------------

def ticket_hold(*, ticket: RemovalTicket, actor, reason: str) -> RemovalTicket:
    """Put a ticket on legal hold (allowed before the job runs); release resumes the same step."""
    if not reason:
        raise ServiceError("a legal hold needs a reason")
    with transaction.atomic():
        current = RemovalTicket.objects.filter(pk=ticket.pk).values_list("status", flat=True).first()
        return _ticket_transition(ticket, TicketStatus.ON_HOLD, actor=actor, verb="ticket.on_hold",
                                  fields={"hold_reason": reason, "status_before_hold": current or ""})


def ticket_release_hold(*, ticket: RemovalTicket, actor) -> RemovalTicket:
    """Release a legal hold: back to review (approval is always re-confirmed after a hold)."""
    with transaction.atomic():
        return _ticket_transition(ticket, TicketStatus.IN_REVIEW, actor=actor, verb="ticket.hold_released",
                                  sources=[TicketStatus.ON_HOLD], fields={"hold_reason": ""})


def ticket_extend_deadline(*, ticket: RemovalTicket, actor, reason: str, days: int | None = None,
                           months: int | None = None) -> RemovalTicket:
    """Extend the response deadline once, with a reason, notifying the requester now.

    GDPR Art. 12(3): by up to two further months, notice within the first month (before the original
    deadline). CCPA regulations §7021(b): once by up to 45 days, with notice within the first 45 days.

    Raises:
        ServiceError: a second extension, no reason, too long, or after the original deadline.
    """
    from dateutil.relativedelta import relativedelta

    if not reason:
        raise ServiceError("an extension needs a reason, which is sent to the requester")
    with transaction.atomic():
        locked = RemovalTicket.objects.select_for_update().get(pk=ticket.pk)
        if locked.original_due_at is not None:
            raise ServiceError("the deadline was already extended once")
        if locked.status in TERMINAL_STATUSES:
            raise TransitionError(f"ticket is '{locked.status}'", locked.status)
        now = timezone.now()
        if now >= locked.due_at:
            raise ServiceError("the extension notice must be sent before the original deadline")
        if locked.jurisdiction == "CCPA":
            days = 45 if days is None and months is None else days
            if months or days is None or not 1 <= days <= 45:
                raise ServiceError("a CCPA extension is 1 to 45 days")
            new_due = locked.due_at + timedelta(days=days)
        else:
            if months is None and days is None:
                months = 2
            new_due = locked.due_at + relativedelta(months=months or 0, days=days or 0)
            if new_due > locked.due_at + relativedelta(months=2):
                raise ServiceError("a GDPR extension is at most two further months")
            if new_due <= locked.due_at:
                raise ServiceError("the extension must move the deadline later")
        RemovalTicket.objects.filter(pk=locked.pk).update(
            original_due_at=locked.due_at, due_at=new_due, extension_reason=reason, extension_notified_at=now
        )
        audit_event_record(actor=actor, verb="ticket.deadline_extended", obj=locked,
                           before={"due_at": locked.due_at.isoformat()},
                           after={"due_at": new_due.isoformat(), "reason": reason, "notified_at": now.isoformat()})
        email = locked.requester.email
        if email:
            transaction.on_commit(lambda: send_mail(
                "Your data-removal request: deadline extended",
                f"We need more time to complete request {locked.public_id}. New deadline: {new_due:%Y-%m-%d %H:%M} UTC. "
                f"Reason: {reason}",
                settings.DEFAULT_FROM_EMAIL, [email],
            ))
    locked.refresh_from_db()
    return locked


def ticket_retry(*, ticket: RemovalTicket, actor, method: str | None = None,
                 hyperparameters: dict | None = None) -> UnlearningJob:
    """An operator re-queues a failed ticket with a new job (another method or stronger settings)."""
    from unlearning_engine import available_methods

    previous = ticket.jobs.filter(publish=True).order_by("-id").first()
    method = method or (previous.method if previous else "dp2")
    if method not in available_methods():
        raise ServiceError(f"unknown method '{method}'")
    if ticket.target_model_id is None or not ticket.resolved_record_ids:
        raise ServiceError("the ticket has no approved forget set")
    source = selectors.model_serving_version(ticket.target_model)
    with transaction.atomic():
        _ticket_transition(ticket, TicketStatus.QUEUED, actor=actor, verb="ticket.retried",
                           sources=[TicketStatus.FAILED], fields={"failure_reason": ""})
        job = UnlearningJob.objects.create(
            model=ticket.target_model, source_version=source, method=method,
            hyperparameters=hyperparameters if hyperparameters is not None else (previous.hyperparameters if previous else {}),
            forget_set_sha256=ticket.forget_set_sha256, forget_count=len(ticket.resolved_record_ids),
        )
        job.tickets.add(ticket)
        audit_event_record(actor=actor, verb="job.created", obj=job,
                           after={"method": method, "retry_of": str(previous.public_id) if previous else None})
        _job_enqueue_on_commit(job)
    return job


def tickets_flag_due_soon(*, now=None) -> int:
    """Flag open tickets due within ``DUE_SOON_DAYS`` once (audit event + webhook); returns the count."""
    now = now or timezone.now()
    horizon = now + timedelta(days=settings.DUE_SOON_DAYS)
    flagged = 0
    for ticket in selectors.tickets_due_soon(now=now, horizon=horizon).filter(due_soon_flagged_at__isnull=True):
        with transaction.atomic():
            if RemovalTicket.objects.filter(pk=ticket.pk, due_soon_flagged_at__isnull=True).update(due_soon_flagged_at=now):
                audit_event_record(actor="system", verb="ticket.due_soon", obj=ticket,
                                   after={"due_at": ticket.due_at.isoformat()})
                webhook_event_emit(event="ticket.due_soon", payload={"ticket": str(ticket.public_id),
                                                                     "due_at": ticket.due_at.isoformat()})
                flagged += 1
    return flagged


def evidence_purge_expired(*, now=None) -> int:
    """Purge forget-set text after certification + ``FORGET_TEXT_RETENTION_DAYS`` (DESIGN §8).

    Blanks the encrypted evidence of certified tickets and the text of records forgotten by their
    jobs, keeping every sha256 digest. Returns the number of tickets purged.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.FORGET_TEXT_RETENTION_DAYS)
    purged = 0
    for ticket in RemovalTicket.objects.filter(status=TicketStatus.CERTIFIED, evidence_purged_at__isnull=True,
                                               jobs__certificate__issued_at__lte=cutoff).distinct():
        with transaction.atomic():
            RemovalTicket.objects.filter(pk=ticket.pk).update(evidence_ciphertext="", evidence_purged_at=now)
            records = TrainingRecord.objects.filter(pk__in=ticket.resolved_record_ids, text_purged_at__isnull=True,
                                                    forgotten_by__isnull=False)
            n = records.update(text="", question="", answer="", text_purged_at=now)
            audit_event_record(actor="system", verb="ticket.evidence_purged", obj=ticket,
                               after={"records_purged": n, "evidence_sha256": ticket.evidence_sha256})
            purged += 1
    return purged


# --- webhooks ---------------------------------------------------------------------------------

def webhook_event_emit(*, event: str, payload: dict) -> None:
    """Record one delivery per subscribed endpoint in the caller's transaction; send on commit."""
    from .models import WebhookDelivery, WebhookEndpoint

    endpoints = [e for e in WebhookEndpoint.objects.filter(active=True) if not e.events or event in e.events]
    for endpoint in endpoints:
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint, event=event,
            payload={"event": event, "occurred_at": timezone.now().isoformat(), "data": payload},
        )

        def send(delivery_id=delivery.pk):
            from .tasks import webhook_deliver_task

            webhook_deliver_task.delay(delivery_id)

        transaction.on_commit(send)


def webhook_signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the exact request body (RFC 2104), sent as ``X-Signature-SHA256``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_deliver(*, delivery_id: int, timeout: float = 10.0) -> bool:
    """POST one delivery; records the attempt. Returns True when delivered (2xx).

    Raises nothing on HTTP errors; the caller (a Celery task with back-off) retries on False.
    """
    import json as _json
    import urllib.error
    import urllib.request

    from .models import WebhookDelivery

    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if delivery.status == WebhookDelivery.STATUS_DELIVERED:
        return True
    body = _json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    request = urllib.request.Request(delivery.endpoint.url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-Event": delivery.event,
        "X-Delivery-Id": str(delivery.pk),
        "X-Signature-SHA256": webhook_signature(delivery.endpoint.secret, body),
    })
    code, error = None, ""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 — operator-configured URL
            code = response.status
    except urllib.error.HTTPError as exc:
        code, error = exc.code, str(exc)
    except (urllib.error.URLError, OSError) as exc:
        error = str(exc)
    ok = code is not None and 200 <= code < 300
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=delivery.attempts + 1, last_status_code=code, last_error=error[:2000],
        status=WebhookDelivery.STATUS_DELIVERED if ok else WebhookDelivery.STATUS_PENDING,
        delivered_at=timezone.now() if ok else None,
    )
    return ok


def webhook_mark_failed(*, delivery_id: int) -> None:
    from .models import WebhookDelivery

    WebhookDelivery.objects.filter(pk=delivery_id).exclude(status=WebhookDelivery.STATUS_DELIVERED).update(
        status=WebhookDelivery.STATUS_FAILED
    )
