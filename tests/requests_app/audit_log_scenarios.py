"""Tamper scenarios against the audit log, shared by the SQLite unit tests and the PostgreSQL
integration tests. On PostgreSQL the table owner first disables the append-only triggers
(``ALTER TABLE ... DISABLE TRIGGER``), which is exactly what the log must survive."""
from __future__ import annotations

from django.db import connection, transaction

from evaluation.audit_log import audit_leaf_hash
from requests_app.audit import audit_event_leaf, audit_event_record
from requests_app.audit_log import audit_log_seal, audit_log_verify
from requests_app.models import AuditEvent, DataSubject

TRIGGERS = {
    "requests_app_auditevent": "requests_app_auditevent_append_only",
    "requests_app_auditleaf": "requests_app_auditleaf_append_only",
    "requests_app_signedtreehead": "requests_app_signedtreehead_append_only",
}


def tamper(*statements):
    """Run raw SQL ``(sql, params)`` statements as the table owner with the triggers disabled."""
    with transaction.atomic(), connection.cursor() as cur:
        pg = connection.vendor == "postgresql"
        if pg:
            for table, trigger in TRIGGERS.items():
                cur.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        for sql, params in statements:
            cur.execute(sql, params)
        if pg:
            for table, trigger in TRIGGERS.items():
                cur.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")


def record(n: int, start: int = 0) -> list[AuditEvent]:
    subject = DataSubject.objects.create(display_name=f"S{start}")
    out = []
    for i in range(start, start + n):
        with transaction.atomic():
            out.append(audit_event_record(actor="tester", verb=f"test.{i}", obj=subject, after={"i": i}))
    return out


def sealed_log(batches=(3, 2, 3)):
    """Events sealed in several batches (one signed tree head per batch): (events, heads)."""
    events, heads = [], []
    for n in batches:
        events += record(n, start=len(events))
        heads.append(audit_log_seal())
    return events, heads


def scenario_tail_deleted():
    events, heads = sealed_log()
    tail = events[-2:]
    tamper(("DELETE FROM requests_app_auditevent WHERE id >= %s", [tail[0].id]))
    r = audit_log_verify()
    assert not r.valid
    assert r.missing_events == [{"leaf_index": 6, "event_id": tail[0].id}, {"leaf_index": 7, "event_id": tail[1].id}]
    assert r.first_bad_id == tail[0].id and "sealed events are missing" in r.reason
    # the table owner also removes the leaves: the signed head still counts 8 leaves
    tamper(("DELETE FROM requests_app_auditleaf WHERE leaf_index >= 6", []))
    r = audit_log_verify()
    assert not r.valid and r.missing_leaves == [6, 7] and r.tree_size == 8
    # ... and the tree head that covers them: the leaves of its batch are left over
    kept = heads[-1].as_document()
    tamper(("DELETE FROM requests_app_signedtreehead WHERE tree_size > 5", []))
    r = audit_log_verify()
    assert not r.valid and "1 leaves lie beyond the latest signed tree head (size 5)" in r.reason
    # ... and the rest of that batch: the database alone is consistent again, only an anchor (a head an
    # auditor or a certificate kept) tells
    tamper(("DELETE FROM requests_app_auditleaf WHERE leaf_index >= 5", []),
           ("DELETE FROM requests_app_auditevent WHERE id = %s", [events[5].id]))
    r = audit_log_verify()
    assert r.valid and r.tree_size == 5, r.problems
    r = audit_log_verify(anchors=[kept])
    assert not r.valid and "given tree head #1 signs 8 leaves; the log holds 5: the log was truncated" in r.reason
    assert r.unmatched_tree_heads == [{"tree_head": "given tree head #1", "tree_size": 8,
                                       "leaves_from": 5, "leaves_to": 8}]


def scenario_middle_deleted():
    events, heads = sealed_log()
    middle = events[3]
    tamper(("DELETE FROM requests_app_auditevent WHERE id = %s", [middle.id]))
    r = audit_log_verify()
    assert not r.valid and r.missing_events == [{"leaf_index": 3, "event_id": middle.id}]
    assert r.first_bad_id == middle.id
    # delete its leaf too and shift the later leaves down: the signed roots no longer match
    tamper(("DELETE FROM requests_app_auditleaf WHERE leaf_index = 3", []),
           ("UPDATE requests_app_auditleaf SET leaf_index = leaf_index - 1 WHERE leaf_index > 3", []))
    r = audit_log_verify()
    assert not r.valid and r.missing_leaves == [7]  # the head of size 8 counts one leaf more than there is
    # the head of size 5 is the first whose root the shifted leaves no longer give: the change lies in leaves 3..4
    assert r.unmatched_tree_heads == [{"tree_head": "tree head 5", "tree_size": 5, "leaves_from": 3, "leaves_to": 5},
                                      {"tree_head": "tree head 8", "tree_size": 8, "leaves_from": 7, "leaves_to": 8}]


def scenario_history_rewritten():
    events, heads = sealed_log()
    target = events[1]
    forged = AuditEvent.objects.get(pk=target.pk)
    forged.after = {"i": 999}
    new_hash = audit_leaf_hash(audit_event_leaf(forged)).hex()
    # rewrite the event with a recomputed hash: the event alone is self-consistent, its leaf is not
    tamper(("UPDATE requests_app_auditevent SET after = %s, hash = %s WHERE id = %s",
            ['{"i": 999}', new_hash, target.id]))
    r = audit_log_verify()
    assert not r.valid and r.changed_events == [{"leaf_index": 1, "event_id": target.id}]
    assert "no longer match their leaf" in r.reason and r.first_bad_id == target.id
    # rewrite the leaf hash too: the stored leaves are consistent, the signed roots are not
    tamper(("UPDATE requests_app_auditleaf SET leaf_hash = %s WHERE leaf_index = 1", [new_hash]))
    r = audit_log_verify()
    assert not r.valid and r.changed_events == [] and r.missing_events == []
    assert [u["tree_size"] for u in r.unmatched_tree_heads] == [3, 5, 8]
    assert r.unmatched_tree_heads[0] == {"tree_head": "tree head 3", "tree_size": 3, "leaves_from": 0, "leaves_to": 3}
    assert "history before leaf 3 was rewritten" in r.reason
