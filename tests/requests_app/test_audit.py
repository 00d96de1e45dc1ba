"""Audit trail: append-only, hash-chained, tamper detection."""
import hashlib

import pytest
from django.db import connection, transaction

from evaluation.certificate import canonical_json
from requests_app.audit import GENESIS_HASH, audit_chain_verify, audit_event_record
from requests_app.models import AuditEvent, DataSubject


def _events(n):
    subject = DataSubject.objects.create(display_name="X")
    for i in range(n):
        with transaction.atomic():
            audit_event_record(actor="tester", verb=f"test.{i}", obj=subject, after={"i": i})


def test_hash_is_the_rfc6962_leaf_hash_of_the_canonical_event_with_its_id(db):
    """Issue 17: no chain (no read of the previous event); hash = SHA-256(0x00 || canonical_json(event + id))."""
    _events(2)
    first, second = AuditEvent.objects.order_by("id")
    assert first.prev_hash == second.prev_hash == "" and second.id > first.id
    leaf = {"id": first.id, "timestamp": first.timestamp.isoformat(), "actor": "tester", "verb": "test.0",
            "object_type": "DataSubject", "object_id": str(first.object_id), "before": None, "after": {"i": 0}}
    assert first.hash == hashlib.sha256(b"\x00" + canonical_json(leaf)).hexdigest()
    result = audit_chain_verify()
    assert result.valid and result.checked == 2 and result.unsealed == 2 and result.tree_size == 0


def test_legacy_chained_events_still_verify(db):
    """Events recorded before migration 0008 keep hash = sha256(prev_hash || canonical_json(event))."""
    from django.utils import timezone

    from requests_app.audit import audit_event_payload, audit_hash

    event = AuditEvent(timestamp=timezone.now(), actor="old", verb="legacy", object_type="X", object_id="1",
                       prev_hash=GENESIS_HASH)
    event.hash = audit_hash(GENESIS_HASH, audit_event_payload(event))
    event.save()
    assert event.hash == hashlib.sha256(GENESIS_HASH.encode() + canonical_json(audit_event_payload(event))).hexdigest()
    assert audit_chain_verify().valid
    # a second chained event that does not link to the first is reported
    bad = AuditEvent(timestamp=timezone.now(), actor="old", verb="legacy", object_type="X", object_id="2",
                     prev_hash="f" * 64)
    bad.hash = audit_hash(bad.prev_hash, audit_event_payload(bad))
    bad.save()
    result = audit_chain_verify()
    assert not result.valid and result.first_bad_id == bad.id and "prev_hash" in result.reason


def test_orm_refuses_update_and_delete(db):
    _events(1)
    event = AuditEvent.objects.get()
    event.verb = "changed"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().update(verb="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()


def test_chain_verification_finds_a_changed_row(db):
    _events(3)
    middle = AuditEvent.objects.order_by("id")[1]
    if connection.vendor == "postgresql":
        pytest.skip("the trigger refuses the change itself (tests/integration)")
    with connection.cursor() as cur:
        cur.execute("UPDATE requests_app_auditevent SET verb = 'tampered' WHERE id = %s", [middle.id])
    result = audit_chain_verify()
    assert not result.valid and result.first_bad_id == middle.id
    assert "content" in result.reason


def test_audit_outside_transaction_is_refused(transactional_db):
    subject = DataSubject.objects.create(display_name="Y")
    with pytest.raises(transaction.TransactionManagementError):
        audit_event_record(actor="x", verb="y", obj=subject)
