"""Ticket mutations (HackSoft style: ``ticket_<verb>``); each one compare-and-sets, audits and enqueues on commit."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import selectors
from ..audit import audit_event_record
from ..models import (
    DataSubject,
    RemovalTicket,
    TargetModel,
    TicketStatus,
    TrainingRecord,
    UnlearningJob,
)
from ..workflow import TransitionError, deadlines_for, sources_for
from .common import (  # noqa: F401
    TERMINAL_STATUSES,
    IdempotencyConflict,
    NotFound,
    PayloadTooLarge,
    PermissionDeniedError,
    ServiceError,
    _job_enqueue_on_commit,
    _sha256_text,
    _ticket_transition,
    encrypt_text,
    forget_set_digest,
)
from .target_models import model_method_check
from .webhooks import webhook_event_emit  # noqa: F401


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
    model_method_check(model, method)  # dp2 needs a DP base, retrain a pre-trained base (issue 14)
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
