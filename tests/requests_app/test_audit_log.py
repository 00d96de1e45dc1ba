"""The audit log (issue 17): sealing, signed tree heads, proofs, verification (SQLite; the same
tamper scenarios run on PostgreSQL in tests/integration/test_audit_log_pg.py)."""
import json

import pytest
from django.core.management import call_command
from django.db import transaction

from evaluation import merkle
from evaluation.audit_log import audit_leaf_hash, tree_head_parse
from evaluation.certificate import verify_certificate
from requests_app import certificate_keys
from requests_app.audit import audit_event_leaf, audit_event_record
from requests_app.audit_log import (
    AuditLogError,
    audit_consistency_proof,
    audit_inclusion_proof,
    audit_log_seal,
    audit_log_verify,
)
from requests_app.models import AuditEvent, AuditLeaf, DataSubject, SignedTreeHead

from . import audit_log_scenarios as sc


@pytest.fixture(autouse=True)
def _keys(settings, tmp_path):
    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"


def test_seal_appends_leaves_in_id_order_and_signs_the_rfc6962_root(db):
    events = sc.record(5)
    head = audit_log_seal()
    leaves = list(AuditLeaf.objects.order_by("leaf_index"))
    assert [(leaf.leaf_index, leaf.event_id) for leaf in leaves] == [(i, e.id) for i, e in enumerate(events)]
    hashes = [audit_leaf_hash(audit_event_leaf(e)) for e in events]
    assert [bytes.fromhex(leaf.leaf_hash) for leaf in leaves] == hashes == [bytes.fromhex(e.hash) for e in events]
    assert head.tree_size == 5 and head.root_hash == merkle.root_hash(hashes).hex()
    doc = head.as_document()
    assert tree_head_parse(doc["payload"]) == (5, merkle.root_hash(hashes))
    assert verify_certificate(doc, certificate_keys.published_keys()).valid
    assert audit_log_seal().pk == head.pk  # nothing new: no new head
    assert SignedTreeHead.objects.count() == 1


def test_inclusion_and_consistency_proofs_verify_against_the_signed_heads(db):
    events, heads = sc.sealed_log((3, 2, 3))
    assert [h.tree_size for h in heads] == [3, 5, 8]
    for event in events:
        p = audit_inclusion_proof(event)
        size, root = tree_head_parse(p["tree_head"]["payload"])
        merkle.verify_inclusion(p["leaf_index"], size, bytes.fromhex(event.hash),
                                [bytes.fromhex(h) for h in p["inclusion_proof"]], root)
    p = audit_inclusion_proof(events[0], tree_size=3)
    assert p["tree_size"] == 3 and len(p["inclusion_proof"]) == 2
    with pytest.raises(AuditLogError, match="not in the tree of size 3"):
        audit_inclusion_proof(events[4], tree_size=3)
    c = audit_consistency_proof(3, 8)
    merkle.verify_consistency(3, 8, bytes.fromhex(heads[0].root_hash), bytes.fromhex(heads[2].root_hash),
                              [bytes.fromhex(h) for h in c["consistency_proof"]])
    assert c["first_tree_head"]["payload"]["tree_size"] == 3
    with pytest.raises(AuditLogError):
        audit_consistency_proof(9)


def test_an_event_committed_after_a_seal_becomes_a_later_leaf(db):
    first = sc.record(2)
    audit_log_seal()
    later = sc.record(1, start=2)
    r = audit_log_verify()
    assert r.valid and r.tree_size == 2 and r.unsealed == 1
    head = audit_log_seal()
    assert head.tree_size == 3 and AuditLeaf.objects.get(leaf_index=2).event_id == later[0].id
    assert audit_log_verify().valid and first


def test_seal_inside_a_rolled_back_transaction_leaves_nothing(db):
    sc.record(2)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_event_record(actor="t", verb="rolled.back", obj=DataSubject.objects.first())
        assert audit_log_seal().tree_size == 3
        raise RuntimeError("the mutation fails after sealing")
    assert SignedTreeHead.objects.count() == 0 and AuditLeaf.objects.count() == 0
    assert audit_log_seal().tree_size == 2


def test_sealer_refuses_a_tampered_unsealed_event(db):
    events = sc.record(2)
    sc.tamper(("UPDATE requests_app_auditevent SET verb = 'forged' WHERE id = %s", [events[1].id]))
    with pytest.raises(AuditLogError, match=f"event {events[1].id} does not match its hash"):
        audit_log_seal()
    assert AuditLeaf.objects.count() == 0


def test_tail_deletion_is_detected(db):
    sc.scenario_tail_deleted()


def test_middle_deletion_is_detected(db):
    sc.scenario_middle_deleted()


def test_rewritten_history_with_recomputed_hashes_is_detected(db):
    sc.scenario_history_rewritten()


def test_a_forged_tree_head_row_is_reported(db):
    sc.sealed_log((2,))
    head = SignedTreeHead.objects.get()
    sc.tamper(("UPDATE requests_app_signedtreehead SET signature = %s WHERE id = %s",
               [head.signature[:-4] + ("AAA=" if not head.signature.endswith("AAA=") else "BBB="), head.id]))
    r = audit_log_verify()
    assert not r.valid and "tree head 2: signature does not verify" in r.reason


def test_commands_seal_and_verify_with_an_auditors_tree_head(db, tmp_path, capsys):
    sc.record(3)
    call_command("audit_log_seal")
    head = json.loads(capsys.readouterr().out)
    assert head["payload"]["tree_size"] == 3
    (tmp_path / "sth.json").write_text(json.dumps(head))
    call_command("verify_audit_chain", "--tree-head", str(tmp_path / "sth.json"))
    assert "audit chain intact: 3 events, tree size 3, 0 not sealed yet" in capsys.readouterr().out
    sc.tamper(("DELETE FROM requests_app_signedtreehead", []), ("DELETE FROM requests_app_auditleaf", []),
              ("DELETE FROM requests_app_auditevent", []))
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_audit_chain", "--tree-head", str(tmp_path / "sth.json"))
    assert exit_info.value.code == 1
    assert "given tree head #1 signs 3 leaves; the log holds 0" in capsys.readouterr().err


def test_api_tree_head_inclusion_consistency_and_verify(db, api):
    assert api("auditor").get("/api/v1/audit-events/tree-head/").status_code == 404
    events, heads = sc.sealed_log((2, 2))
    head = api("auditor").get("/api/v1/audit-events/tree-head/").json()
    assert head["payload"]["tree_size"] == 4 and head["signature"] == heads[-1].signature
    inc = api("auditor").get(f"/api/v1/audit-events/{events[1].id}/inclusion/?tree_size=2").json()
    assert inc["leaf_index"] == 1 and inc["tree_size"] == 2 and inc["leaf"]["id"] == events[1].id
    cons = api("auditor").get("/api/v1/audit-events/consistency/?first=2").json()
    assert cons["second"] == 4 and len(cons["consistency_proof"]) == 1
    assert api("auditor").get("/api/v1/audit-events/consistency/?first=x").status_code == 400
    assert api("auditor").get("/api/v1/audit-events/consistency/?first=9").status_code == 400
    v = api("auditor").get("/api/v1/audit-events/verify/").json()
    assert v["valid"] and v["tree_size"] == 4 and v["checked"] == 4 and v["unsealed"] == 0
    v = api("auditor").post("/api/v1/audit-events/verify/", {"tree_heads": [head]}, format="json")
    assert v.status_code == 200 and v.json()["valid"]
    bad = api("auditor").post("/api/v1/audit-events/verify/", {"tree_heads": "x"}, format="json")
    assert bad.status_code == 400
    forged = {**head, "payload": {**head["payload"], "tree_size": 5}}
    v = api("auditor").post("/api/v1/audit-events/verify/", {"tree_heads": [forged]}, format="json").json()
    assert not v["valid"] and "given tree head #1: signature does not verify" in v["reason"]
    assert api("owner").get("/api/v1/audit-events/tree-head/").status_code == 403
    assert AuditEvent.objects.count() == 4


def test_periodic_task_seals_and_is_scheduled(db, settings):
    from requests_app.tasks import audit_log_seal_task

    sc.record(2)
    assert audit_log_seal_task() == 2 and audit_log_seal_task() == 2
    assert settings.CELERY_BEAT_SCHEDULE["seal-audit-log"]["task"] == "requests_app.tasks.audit_log_seal_task"


def test_portal_explains_an_audit_log_proof_failure():
    from requests_app.portal.presentation import verification_reason_text

    text = verification_reason_text("audit-log proof: the inclusion proof does not lead to the tree head's root hash")
    assert text.startswith("Its signature is ours, but the proof") and text.endswith("root hash)")
