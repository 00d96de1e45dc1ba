"""Issue 17 on PostgreSQL: the table owner disables the append-only triggers (``ALTER TABLE ...
DISABLE TRIGGER``) and deletes the tail, deletes a middle event, or rewrites history with recomputed
hashes; each is detected. Concurrent appends take no global lock and all end up in the log.
Run with your own database: DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt_<name> (conftest)."""
from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from requests_app.audit import audit_event_record
from requests_app.audit_log import audit_log_seal, audit_log_verify
from requests_app.models import AuditEvent, AuditLeaf, DataSubject
from tests.requests_app import audit_log_scenarios as sc

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _pg(settings, tmp_path):
    assert connection.vendor == "postgresql", "integration tests need DATABASE_URL pointing at PostgreSQL"
    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"


def test_triggers_refuse_changes_to_leaves_and_tree_heads():
    from django.db import DatabaseError

    sc.sealed_log((2,))
    for sql in ("UPDATE requests_app_auditleaf SET leaf_hash = 'x'", "DELETE FROM requests_app_auditleaf",
                "UPDATE requests_app_signedtreehead SET root_hash = 'x'", "DELETE FROM requests_app_signedtreehead"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql)
    assert audit_log_verify().valid


def test_tail_deletion_is_detected_on_postgresql():
    sc.scenario_tail_deleted()


def test_middle_deletion_is_detected_on_postgresql():
    sc.scenario_middle_deleted()


def test_rewritten_history_with_recomputed_hashes_is_detected_on_postgresql():
    sc.scenario_history_rewritten()


def test_concurrent_appends_and_seals_lose_no_event():
    """16 writers append while a sealer seals repeatedly: no writer waits on a global lock, ids
    come from the sequence, and after a final seal every event is exactly one leaf."""
    subject = DataSubject.objects.create(display_name="Concurrent")
    barrier = threading.Barrier(17)
    errors: list = []

    def writer(i):
        try:
            barrier.wait()
            for j in range(10):
                with transaction.atomic():
                    audit_event_record(actor=f"w{i}", verb="test.concurrent", obj=subject, after={"j": j})
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    def sealer():
        try:
            barrier.wait()
            for _ in range(10):
                audit_log_seal()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)] + [threading.Thread(target=sealer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    head = audit_log_seal()
    assert head.tree_size == AuditEvent.objects.count() == 160
    assert sorted(AuditLeaf.objects.values_list("event_id", flat=True)) == sorted(
        AuditEvent.objects.values_list("id", flat=True))
    r = audit_log_verify()
    assert r.valid and r.unsealed == 0 and r.tree_size == 160, r.problems
