"""Ticket mutations (HackSoft style: ``ticket_<verb>``); each one compare-and-sets, audits and enqueues on commit."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import selectors
from ..audit import audit_event_record
from ..models import (
    DataSubject,
    RemovalTicket,
    TargetModel,
    TicketStatus,
    UnlearningJob,
)
from ..workflow import HOLD_RETURN_STATES, TransitionError, deadlines_for, sources_for
from .approval import (
    approval_check_people,
    approval_forget_records,
    forget_set_audit_entries,
    hyperparameters_check,
)
from .calibration import approval_hyperparameters
from .common import (  # noqa: F401
    TERMINAL_STATUSES,
    IdempotencyConflict,
    IdempotencyInFlight,
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
from .email import email_send_on_commit
from .idempotency import IN_FLIGHT_MESSAGE, idempotency_db_lock, idempotency_slot, idempotent_replay
from .jobs import erasure_method_check
from .manifests import evaluation_manifest_prepare
from .target_models import model_family_check, model_method_check
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


CODE_ATTEMPTS_EXHAUSTED = ("too many wrong codes for this request; it can no longer be verified by code "
                           "(the legal team verifies the identity another way or denies the request)")


def _identity_code_new(ticket_public_id) -> tuple[str, dict]:
    """A fresh 6-digit code and the ticket fields that store its digest and expiry."""
    code = f"{secrets.randbelow(10**6):06d}"
    return code, {
        "identity_code_sha256": _sha256_text(f"{ticket_public_id}:{code}"),
        "identity_code_expires_at": timezone.now() + timedelta(seconds=settings.IDENTITY_CODE_TTL_SECONDS),
    }


def _identity_code_mail(ticket: RemovalTicket, code: str) -> None:
    email = ticket.requester.email
    if email:
        email_send_on_commit(
            subject="Confirm your data-removal request",
            body=(f"Your confirmation code for request {ticket.public_id} is {code}. "
                  f"It expires in {settings.IDENTITY_CODE_TTL_SECONDS // 60} minutes."),
            to=[email],
        )


def _identity_code_issue(ticket: RemovalTicket) -> str:
    code, fields = _identity_code_new(ticket.public_id)
    RemovalTicket.objects.filter(pk=ticket.pk).update(**fields)
    # identity_attempts is not reset: wrong codes count per ticket in total (issue 13 item 4)
    _identity_code_mail(ticket, code)
    return code


def ticket_create(
    *,
    requester,
    subject: DataSubject | None,
    jurisdiction: str = "GDPR",
    legal_ground: str = "",
    description: str = "",
    target_model: TargetModel | None = None,
    idempotency_key: str | None = None,
    request_body_sha256: str = "",
    received_at=None,
    evidence_text: str = "",
    subject_name_given: str = "",
) -> tuple[RemovalTicket, bool]:
    """File an erasure request; e-mails a one-time identity code to the requester.

    ``subject=None`` with ``subject_name_given``: nobody of that name was found in the training
    data; the request is filed anyway (its deadline runs from receipt) and a reviewer links the
    subject by hand or answers "no data held" (issue 21 item 3, :mod:`.unmatched`).

    Returns ``(ticket, created)``; a replay with the same idempotency key and body returns the
    original ticket with ``created=False`` (also when the two requests race, see
    :mod:`.idempotency`). Deadlines per :func:`workflow.deadlines_for`. An open ticket for the same
    subject filed within ``DUPLICATE_WINDOW_DAYS`` is linked as ``duplicate_of`` (evidence for GDPR
    Art. 12(5)); the new ticket is still filed. ``evidence_text`` (pasted or uploaded by the owner)
    is stored encrypted with Fernet and only its digest survives the purge. ``received_at`` (staff
    back-dating a request that arrived by mail) must be within :func:`received_at_check`'s window;
    the audit event records it and whether it was given.

    Raises:
        IdempotencyConflict: the key was used before with another request body (API 422).
        IdempotencyInFlight: a request with the same key is still being processed (API 409).
        ServiceError: evidence text above ``EVIDENCE_MAX_BYTES``; ``received_at`` naive or outside
            the window; neither a subject nor the name given.
    """
    if subject is None and not subject_name_given.strip():
        raise ServiceError("give the data subject, or the name the requester gave when none was found")
    kwargs = dict(requester=requester, subject=subject, subject_name_given="" if subject else subject_name_given.strip(),
                  jurisdiction=jurisdiction, legal_ground=legal_ground,
                  description=description, target_model=target_model, idempotency_key=idempotency_key,
                  request_body_sha256=request_body_sha256, received_at=received_at, evidence_text=evidence_text)
    if not idempotency_key:
        return _ticket_create(**kwargs)
    with idempotency_slot(requester.pk, idempotency_key):
        try:  # a replay is answered by the look-up under the key's lock inside _ticket_create
            return _ticket_create(**kwargs)
        except IntegrityError:
            # lost the insert race to another process: the winner has committed by now
            existing = idempotent_replay(requester=requester, key=idempotency_key, body_sha256=request_body_sha256)
            if existing:
                return existing, False
            raise IdempotencyInFlight(IN_FLIGHT_MESSAGE) from None


def received_at_check(received_at, *, now=None):
    """``received_at`` as given by staff, checked: aware and within the sane window of ``now``
    ([now − ``RECEIVED_AT_MAX_AGE_DAYS`` (365), now + ``RECEIVED_AT_MAX_FUTURE_SECONDS`` (300)]).

    Raises:
        ServiceError: naive, too far in the future or too old.
    """
    now = now or timezone.now()
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ServiceError("received_at must be timezone-aware (give a UTC offset)")
    max_future = timedelta(seconds=getattr(settings, "RECEIVED_AT_MAX_FUTURE_SECONDS", 300))
    max_age = timedelta(days=getattr(settings, "RECEIVED_AT_MAX_AGE_DAYS", 365))
    if received_at > now + max_future:
        raise ServiceError(f"received_at {received_at.isoformat()} is in the future (at most "
                           f"{int(max_future.total_seconds())} s ahead of the server clock)")
    if received_at < now - max_age:
        raise ServiceError(f"received_at {received_at.isoformat()} is more than {max_age.days} days ago")
    return received_at


def _ticket_create(*, requester, subject, subject_name_given, jurisdiction, legal_ground, description, target_model,
                   idempotency_key, request_body_sha256, received_at, evidence_text) -> tuple[RemovalTicket, bool]:
    given_received_at = received_at is not None
    if given_received_at:
        received_at_check(received_at)
    evidence = evidence_text.encode("utf-8") if evidence_text else b""
    if len(evidence) > settings.EVIDENCE_MAX_BYTES:
        raise PayloadTooLarge(
            f"the attached text is {len(evidence)} bytes; the limit is {settings.EVIDENCE_MAX_BYTES} bytes"
        )
    received_at = received_at or timezone.now()
    ack_due, due = deadlines_for(jurisdiction, received_at)
    window_start = timezone.now() - timedelta(days=settings.DUPLICATE_WINDOW_DAYS)
    duplicate_of = None if subject is None else (
        RemovalTicket.objects.filter(subject=subject, received_at__gte=window_start)
        .exclude(status__in=TERMINAL_STATUSES).order_by("received_at").first()
    )
    with transaction.atomic():
        if idempotency_key:
            idempotency_db_lock(requester.pk, idempotency_key)
            existing = idempotent_replay(requester=requester, key=idempotency_key, body_sha256=request_body_sha256)
            if existing:  # committed by another process between the first look-up and the lock
                return existing, False
        public_id = uuid.uuid4()
        code, code_fields = _identity_code_new(public_id)
        ticket = RemovalTicket.objects.create(
            public_id=public_id, **code_fields,
            duplicate_of=duplicate_of, idempotency_body_sha256=request_body_sha256,
            evidence_ciphertext=encrypt_text(evidence_text) if evidence_text else "",
            evidence_sha256=hashlib.sha256(evidence).hexdigest() if evidence else "",
            evidence_bytes=len(evidence), requester=requester, subject=subject, target_model=target_model,
            subject_name_given=subject_name_given,
            jurisdiction=jurisdiction, legal_ground=legal_ground, description=description,
            received_at=received_at, ack_due_at=ack_due, due_at=due, idempotency_key=idempotency_key,
        )
        audit_event_record(
            actor=requester, verb="ticket.submitted", obj=ticket,
            after={"status": ticket.status, "subject": str(subject.public_id) if subject else None,
                   "subject_found": subject is not None, "jurisdiction": jurisdiction,
                   "due_at": due.isoformat(), "received_at": received_at.isoformat(),
                   "received_at_given": given_received_at,
                   "duplicate_of": str(duplicate_of.public_id) if duplicate_of else None},
        )
        webhook_event_emit(event="ticket.submitted", payload={"ticket": str(ticket.public_id),
                                                              "status": ticket.status})
        _identity_code_mail(ticket, code)
    return ticket, True


def ticket_resend_code(*, ticket: RemovalTicket, actor) -> None:
    """Issue a fresh identity code; only while awaiting verification. Wrong codes entered before
    still count towards the ticket's total of ``IDENTITY_CODE_MAX_ATTEMPTS``.

    Raises:
        ServiceError: the ticket's wrong-code total is exhausted (a new code would not be accepted).
        TransitionError: the ticket is not awaiting verification.
    """
    with transaction.atomic():
        locked = RemovalTicket.objects.select_for_update().get(pk=ticket.pk)
        if locked.status != TicketStatus.SUBMITTED:
            raise TransitionError(f"ticket is '{locked.status}', not awaiting identity verification", locked.status)
        if locked.identity_attempts >= settings.IDENTITY_CODE_MAX_ATTEMPTS:
            raise ServiceError(CODE_ATTEMPTS_EXHAUSTED)
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
            raise ServiceError(CODE_ATTEMPTS_EXHAUSTED)
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

    ``record_ids`` must lie inside the ticket's resolution: the subject's provenance-linked records
    plus the content matches a reviewer confirmed (:func:`approval.ticket_confirm_resolution`);
    ``None`` takes all of them. The ``ticket.approved`` audit event lists every record id and
    sha256 of the frozen set. Hyper-parameters are validated as the job will run them
    (:func:`approval.hyperparameters_check`).

    Raises:
        ServiceError: identity not verified; empty forget set, records outside the model's corpus,
            already forgotten or outside the resolution; unknown method or invalid
            hyper-parameters; no target model.
        PermissionDeniedError: four-eyes policy (no reviewer, or the reviewer approving).
        TransitionError: the ticket is not in review (e.g. approved twice).
    """
    from unlearning_engine import available_methods

    ticket.refresh_from_db()
    if ticket.status not in sources_for(TicketStatus.APPROVED):
        raise TransitionError(f"cannot approve a ticket that is '{ticket.status}' (it must be in review)",
                              ticket.status)
    approval_check_people(ticket=ticket, approver=approver)
    if ticket.subject_id is None:
        raise ServiceError("the request names nobody found in the training data: link the data subject by hand "
                           "or answer that no data is held")
    if method not in available_methods(None):
        raise ServiceError(f"unknown method '{method}'; available: {', '.join(available_methods(None))}")
    model = target_model or ticket.target_model or selectors.model_default()
    if model is None:
        raise ServiceError("no target model registered")
    model_family_check(model, method)  # issue 19: eco/whp for a classifier → 400 naming the families
    erasure_method_check(method)  # issue 12: suppression (eco) cannot fulfil an erasure request
    model_method_check(model, method)  # dp2 needs a DP base, retrain a pre-trained base (issue 14)
    # issue 15: without explicit values the (model, method) calibration's become the job's
    hyperparameters, hp_source = approval_hyperparameters(model=model, method=method, hyperparameters=hyperparameters)
    hyperparameters_check(model=model, method=method, hyperparameters=hyperparameters)
    records = approval_forget_records(ticket=ticket, model=model, record_ids=record_ids)
    record_ids = [r.pk for r in records]
    digest = forget_set_digest([r.sha256 for r in records])
    source = selectors.model_serving_version(model)
    if source is None:
        raise ServiceError(f"model '{model.name}' has no serving version")
    evaluation_manifest_prepare(model=model, forget_records=records, weights_sha256=source.weights_sha256,
                                frozen_forget_ids=record_ids, frozen_forget_sha256=None)  # issue 23: 400
    with transaction.atomic():
        _ticket_transition(
            ticket, TicketStatus.APPROVED, actor=approver, verb="ticket.approved",
            fields={"approved_by": approver, "decision": "approved", "resolved_record_ids": record_ids,
                    "forget_set_sha256": digest, "target_model": model},
            audit_extra={"forget_set": forget_set_audit_entries(records), "forget_count": len(records),
                         "reviewed_by": ticket.reviewed_by_id,
                         "resolution_confirmed_by": ticket.resolution_confirmed_by_id,
                         "method": method, "hyperparameters": hyperparameters, "hyperparameters_source": hp_source},
        )
        job = UnlearningJob.objects.create(
            model=model, source_version=source, method=method, hyperparameters=hyperparameters or {},
            forget_set_sha256=digest, forget_count=len(record_ids),
        )
        job.tickets.add(ticket)
        audit_event_record(
            actor=approver, verb="job.created", obj=job,
            after={"method": method, "hyperparameters": job.hyperparameters, "hyperparameters_source": hp_source,
                   "forget_count": len(record_ids),
                   "forget_set_sha256": digest, "source_version": source.pk},
        )
        _ticket_transition(ticket, TicketStatus.QUEUED, actor=approver, verb="ticket.queued")
        _job_enqueue_on_commit(job)
    return job


def ticket_deny(*, ticket: RemovalTicket, actor, exception_code: str, reason: str) -> RemovalTicket:
    """Deny with a legal exception of the ticket's jurisdiction and a reason (both required).

    GDPR (and other) tickets cite Art. 17(3)(a)–(e) or 12(5); CCPA tickets §1798.105(d)(1)–(9)
    (:func:`requests_app.legal.denial_exceptions_for`). Both may cite an unverifiable identity.

    Raises:
        ServiceError: no code or reason, or a code of another jurisdiction.
    """
    from ..legal import denial_exceptions_for

    if not exception_code or not reason:
        raise ServiceError("a denial needs an exception code (GDPR Art. 17(3) / CCPA §1798.105(d)) and a reason")
    allowed = denial_exceptions_for(ticket.jurisdiction)
    if exception_code not in allowed:
        raise ServiceError(f"'{exception_code}' is not an exception for a {ticket.jurisdiction} request; "
                           f"use one of: {', '.join(allowed)}")
    with transaction.atomic():
        return _ticket_transition(
            ticket, TicketStatus.DENIED, actor=actor, verb="ticket.denied",
            fields={"decision": "denied", "exception_code": exception_code, "decision_reason": reason},
        )


def ticket_withdraw(*, ticket: RemovalTicket, actor) -> RemovalTicket:
    """The owner withdraws the request (allowed until the job runs).

    In the same transaction the ticket's not-yet-finished jobs let go of it
    (:func:`jobs.jobs_detach_withdrawn_ticket`): a job left with no live ticket ends ``cancelled``,
    a batch job keeps running for its other tickets with a recomputed forget set.
    """
    from .jobs import jobs_detach_withdrawn_ticket, jobs_lock_live_of_ticket

    with transaction.atomic():
        # lock the jobs before the ticket, in the same order as job_claim (job, then its tickets): no deadlock
        jobs_lock_live_of_ticket(ticket=ticket)
        ticket = _ticket_transition(ticket, TicketStatus.WITHDRAWN, actor=actor, verb="ticket.withdrawn")
        jobs_detach_withdrawn_ticket(ticket=ticket, actor=actor)
        return ticket



# --- lifecycle: holds, extensions, retries, deadlines ------------------------------------------

def ticket_hold(*, ticket: RemovalTicket, actor, reason: str) -> RemovalTicket:
    """Put a ticket on legal hold (allowed before the job runs); release resumes the same step."""
    if not reason:
        raise ServiceError("a legal hold needs a reason")
    with transaction.atomic():
        current = RemovalTicket.objects.filter(pk=ticket.pk).values_list("status", flat=True).first()
        return _ticket_transition(ticket, TicketStatus.ON_HOLD, actor=actor, verb="ticket.on_hold",
                                  fields={"hold_reason": reason, "status_before_hold": current or ""})


def _hold_return_state(ticket: RemovalTicket) -> str:
    """The state a released hold returns to: ``status_before_hold`` when it is a pre-approval
    state, else the furthest step the ticket's own fields prove (never past identity verification
    or review that did not happen)."""
    if ticket.status_before_hold in HOLD_RETURN_STATES:
        return ticket.status_before_hold
    if ticket.identity_verified_at is None:
        return TicketStatus.SUBMITTED
    return TicketStatus.IN_REVIEW if ticket.reviewed_by_id else TicketStatus.IDENTITY_VERIFIED


def ticket_release_hold(*, ticket: RemovalTicket, actor) -> RemovalTicket:
    """Release a legal hold: back to the state before the hold (issue 13 item 1: a hold taken while
    ``submitted`` returns to ``submitted``, so identity verification and review still happen).
    A hold taken after approval returns to review (the approval is re-confirmed)."""
    with transaction.atomic():
        locked = RemovalTicket.objects.select_for_update().get(pk=ticket.pk)
        if locked.status != TicketStatus.ON_HOLD:
            raise TransitionError(f"ticket is '{locked.status}', not on hold", locked.status)
        return _ticket_transition(locked, _hold_return_state(locked), actor=actor, verb="ticket.hold_released",
                                  sources=[TicketStatus.ON_HOLD], fields={"hold_reason": "", "status_before_hold": ""})


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
        locked.refresh_from_db()
        from .notices import owner_notice_queue

        # GDPR Art. 12(3) / CCPA regulations §7021(b): the notice with the reasons, sent after commit
        owner_notice_queue(ticket=locked, kind="extension", extra={"extension_reason": reason})
    locked.refresh_from_db()
    return locked


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
