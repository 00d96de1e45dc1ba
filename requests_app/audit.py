"""Hash-chained, append-only audit trail (DESIGN §3).

``hash = sha256(prev_hash || canonical_json(event))`` where ``event`` holds timestamp (ISO 8601 UTC),
actor, verb, object type and id, before and after. The first event chains to 64 zeros.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from evaluation.certificate import canonical_json

from .models import AuditEvent

GENESIS_HASH = "0" * 64
_CHAIN_LOCK_KEY = 0x6175646974  # "audit"


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return f"user:{actor.pk}:{actor.get_username()}"


def audit_event_payload(event: AuditEvent) -> dict:
    """The hashed content of one event (everything but the hashes)."""
    return {
        "timestamp": event.timestamp.isoformat(),
        "actor": event.actor,
        "verb": event.verb,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": event.before,
        "after": event.after,
    }


def audit_hash(prev_hash: str, payload: dict) -> str:
    """sha256(prev_hash || canonical_json(payload)) as lowercase hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(payload)).hexdigest()


def audit_event_record(*, actor, verb: str, obj, before: dict | None = None, after: dict | None = None) -> AuditEvent:
    """Append one event to the chain. Must run inside the caller's transaction.

    On PostgreSQL a transaction-scoped advisory lock serialises appends so that two concurrent
    transactions cannot chain to the same predecessor (the ``hash`` column is also unique).

    Raises:
        django.db.transaction.TransactionManagementError: when called outside ``atomic()``.
    """
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("audit events must be written inside the mutation's transaction")
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    event = AuditEvent(
        timestamp=timezone.now(),
        actor=_actor_label(actor),
        verb=verb,
        object_type=type(obj).__name__,
        object_id=str(getattr(obj, "public_id", None) or obj.pk),
        before=before,
        after=after,
        prev_hash=last or GENESIS_HASH,
    )
    event.hash = audit_hash(event.prev_hash, audit_event_payload(event))
    event.save()
    return event


@dataclass
class ChainVerification:
    valid: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""


def audit_chain_verify() -> ChainVerification:
    """Recompute every hash in order; report the first event whose link or content is wrong."""
    prev = GENESIS_HASH
    n = 0
    for event in AuditEvent.objects.order_by("id").iterator():
        n += 1
        if event.prev_hash != prev:
            return ChainVerification(False, n, event.id, "prev_hash does not match the previous event")
        if audit_hash(prev, audit_event_payload(event)) != event.hash:
            return ChainVerification(False, n, event.id, "event content does not match its hash")
        prev = event.hash
    return ChainVerification(True, n)
