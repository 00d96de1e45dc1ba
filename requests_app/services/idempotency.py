"""Idempotency-Key handling of ticket creation, also under concurrent requests (issue 13 item 6).

Semantics (IETF draft-ietf-httpapi-idempotency-key-header §2.6): the same key and the same body after
the first request completed → the original response; the same key with a different body → 422; the
same key while the first request is still being processed → 409 (the client retries later).

"In flight" is detected without waiting: a process-local registry (threads of one server process,
the embedded SQLite mode) and, on PostgreSQL, a transaction-scoped advisory lock on the
(requester, key) pair (other processes). The unique constraint ``ticket_idempotency_key`` stays the
last line of defence: a loser of the insert race looks the winner up and gets 200 / 422.
"""
from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager

from django.db import connection

from ..models import RemovalTicket
from .common import IdempotencyConflict, IdempotencyInFlight

_IN_FLIGHT: set[tuple[int, str]] = set()
_IN_FLIGHT_LOCK = threading.Lock()

IN_FLIGHT_MESSAGE = "a request with this Idempotency-Key is still being processed; retry in a moment"


@contextmanager
def idempotency_slot(requester_id: int, key: str):
    """Hold the (requester, key) slot in this process for the duration of the block.

    Raises:
        IdempotencyInFlight: another thread of this process holds it.
    """
    slot = (requester_id, key)
    with _IN_FLIGHT_LOCK:
        if slot in _IN_FLIGHT:
            raise IdempotencyInFlight(IN_FLIGHT_MESSAGE)
        _IN_FLIGHT.add(slot)
    try:
        yield
    finally:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.discard(slot)


def idempotency_db_lock(requester_id: int, key: str) -> None:
    """On PostgreSQL take ``pg_try_advisory_xact_lock`` on the pair (released at commit/rollback).

    Must run inside ``transaction.atomic``. A no-op on other databases (SQLite serialises writers).

    Raises:
        IdempotencyInFlight: another transaction holds the lock.
    """
    if connection.vendor != "postgresql":
        return
    digest = hashlib.sha256(f"ticket-idempotency:{requester_id}:{key}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id])
        acquired = cursor.fetchone()[0]
    if not acquired:
        raise IdempotencyInFlight(IN_FLIGHT_MESSAGE)


def idempotent_replay(*, requester, key: str, body_sha256: str) -> RemovalTicket | None:
    """The ticket already filed with ``key`` by ``requester`` (``None`` if none).

    Raises:
        IdempotencyConflict: it was filed with another request body.
    """
    existing = RemovalTicket.objects.filter(requester=requester, idempotency_key=key).first()
    if existing is None:
        return None
    if body_sha256 and existing.idempotency_body_sha256 not in ("", body_sha256):
        raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
    return existing
