"""Shared pieces of the services: errors, evidence encryption, digests and the audited ticket transition."""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..audit import audit_event_record
from ..models import (
    RemovalTicket,
    TicketStatus,
    UnlearningJob,
)
from ..workflow import TransitionError, sources_for
from .webhooks import webhook_event_emit


class ServiceError(Exception):
    """Invalid input to a service (the API answers 400 with the message)."""


class NotFound(ServiceError):
    """A referenced object does not exist (the API answers 400/404 with the message)."""


class IdempotencyConflict(ServiceError):
    """An idempotency key replayed with a different body (the API answers 422)."""


class PayloadTooLarge(ServiceError):
    """Uploaded or pasted evidence above the limit (the API answers 413 with the limit)."""


class IdempotencyInFlight(ServiceError):
    """The same idempotency key is being processed by another request right now (the API answers 409)."""


class PermissionDeniedError(ServiceError):
    """A policy forbids this actor (e.g. four-eyes: the reviewer may not approve; API 403)."""


TERMINAL_STATUSES = (TicketStatus.CERTIFIED, TicketStatus.DENIED, TicketStatus.WITHDRAWN, TicketStatus.NO_DATA)


def _fernet():
    from cryptography.fernet import Fernet

    return Fernet(settings.EVIDENCE_ENCRYPTION_KEY.encode())


def encrypt_text(text: str) -> str:
    """Fernet token (AES-128-CBC + HMAC-SHA256) of ``text`` with the key from settings."""
    return _fernet().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt_text(token: str) -> str:
    """Inverse of :func:`encrypt_text`; raises ``cryptography.fernet.InvalidToken`` on a wrong key."""
    return _fernet().decrypt(token.encode("ascii")).decode("utf-8")


#: What a job given up after repeatedly lost workers most often means, and what to do (issue 23 item 2).
LOST_WORKER_HINT = ("; a worker killed by the operating system for memory (CPU out-of-memory) ends this way: retry "
                    "with a smaller batch_size, LoRA or a smaller model, lower DP_MEMORY_BUDGET_BYTES for DP training, "
                    "or run it on a worker with more memory")


def _sha256_text(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def forget_set_digest(record_digests: list[str]) -> str:
    """DESIGN §8 forget-set digest: sha256 of the sorted per-record sha256 list, newline-joined."""
    return _sha256_text("\n".join(sorted(record_digests)))



def _ticket_transition(
    ticket: RemovalTicket, to: str, *, actor, verb: str, fields: dict | None = None, sources: list[str] | None = None,
    audit_extra: dict | None = None,
) -> RemovalTicket:
    """Compare-and-set ``ticket.status`` from one of ``sources`` to ``to`` and audit it.

    ``audit_extra`` is added to the audit event's ``after`` (e.g. the frozen forget set's record ids
    and digests at approval).

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
    after.update(audit_extra or {})
    audit_event_record(actor=actor, verb=verb, obj=ticket, before=before, after=after)
    webhook_event_emit(event=verb, payload={"ticket": str(ticket.public_id), "status": to, "previous": before["status"]})
    from .notices import owner_notice_for_transition

    owner_notice_for_transition(ticket=ticket, verb=verb)  # the owner's e-mail, sent after commit (issue 21)
    return ticket



def _job_enqueue_on_commit(job: UnlearningJob) -> None:
    """Start the job after commit: on the broker's queue, or in embedded mode in this thread or on
    the embedded worker (``job_dispatch``, issue 21 item 7)."""
    from ..job_dispatch import job_dispatch_callback

    transaction.on_commit(job_dispatch_callback(job.pk))



def _tickets_advance(job: UnlearningJob, to: str, *, actor, verb: str) -> None:
    """Move the job's tickets to ``to``; tickets already there (a re-claimed job) are left alone."""
    for ticket in job.tickets.all():
        if ticket.status != to:
            _ticket_transition(ticket, to, actor=actor, verb=verb)
