"""Append-only audit trail (DESIGN §3), sealed into a verifiable log (:mod:`requests_app.audit_log`).

An event's ``id`` comes from the table's sequence inside the mutation's transaction (PostgreSQL
``nextval``; SQLite, which serialises writers, its AUTOINCREMENT counter): no global lock, no read
of the previous event. Its ``hash`` is the RFC 6962 leaf hash of its canonical content
(:func:`evaluation.audit_log.audit_leaf_hash`); the sealer later appends it to the Merkle tree and
signs a tree head. Events recorded before migration 0008 keep their hash chain
``hash = sha256(prev_hash || canonical_json(event without id))``, the first chaining to 64 zeros.
"""
from __future__ import annotations

import hashlib

from django.db import connection, transaction
from django.utils import timezone

from evaluation.audit_log import audit_leaf_hash
from evaluation.certificate import canonical_json

from .models import AuditEvent

GENESIS_HASH = "0" * 64


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return f"user:{actor.pk}:{actor.get_username()}"


def audit_event_payload(event: AuditEvent) -> dict:
    """The content of one event without its id (what the legacy hash chain hashed)."""
    return {
        "timestamp": event.timestamp.isoformat(),
        "actor": event.actor,
        "verb": event.verb,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": event.before,
        "after": event.after,
    }


def audit_event_leaf(event: AuditEvent) -> dict:
    """The event as a log leaf: its id (sequence number) and content (``evaluation.audit_log.LEAF_FIELDS``)."""
    return {"id": event.id, **audit_event_payload(event)}


def audit_hash(prev_hash: str, payload: dict) -> str:
    """Legacy chain hash: sha256(prev_hash || canonical_json(payload)) as lowercase hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(payload)).hexdigest()


def audit_event_expected_hash(event: AuditEvent) -> str:
    """What ``event.hash`` must be for its stored content: the leaf hash, or for a legacy event
    (``prev_hash`` set) the chain hash."""
    if event.prev_hash:
        return audit_hash(event.prev_hash, audit_event_payload(event))
    return audit_leaf_hash(audit_event_leaf(event)).hex()


def _next_event_id() -> int:
    table = AuditEvent._meta.db_table
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [table])
            return int(cur.fetchone()[0])
        if connection.vendor == "sqlite":
            cur.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cur.fetchone()
            return int(row[0]) + 1 if row else 1
    raise NotImplementedError(f"audit events need PostgreSQL or SQLite, not {connection.vendor}")


def audit_event_record(*, actor, verb: str, obj, before: dict | None = None, after: dict | None = None) -> AuditEvent:
    """Append one event. Must run inside the caller's transaction, which it never serialises.

    Raises:
        django.db.transaction.TransactionManagementError: when called outside ``atomic()``.
    """
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("audit events must be written inside the mutation's transaction")
    event = AuditEvent(
        id=_next_event_id(),
        timestamp=timezone.now(),
        actor=_actor_label(actor),
        verb=verb,
        object_type=type(obj).__name__,
        object_id=str(getattr(obj, "public_id", None) or obj.pk),
        before=before,
        after=after,
        prev_hash="",
    )
    event.hash = audit_leaf_hash(audit_event_leaf(event)).hex()
    event.save()
    return event


def audit_chain_verify(**kwargs):
    """The audit trail checked against the signed tree heads: :func:`requests_app.audit_log.audit_log_verify`."""
    from .audit_log import audit_log_verify

    return audit_log_verify(**kwargs)
