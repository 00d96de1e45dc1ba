"""Issue 17: every certificate embeds the latest signed tree head and the inclusion proof of its own
issuance event; the standalone verifier checks both offline, with the published keys only."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from evaluation.audit_log import payload_digest
from evaluation.certificate import verify_certificate
from requests_app import certificate_keys, services
from requests_app.audit_log import audit_log_verify
from requests_app.models import AuditEvent, AuditLeaf, Certificate, SignedTreeHead

from . import audit_log_scenarios as sc
from .test_certificate_suppression import VERDICTS, _evaluating_job

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _keys(settings, tmp_path):
    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"


@pytest.fixture
def issued(target_model, corpus):
    sc.record(3)  # earlier history of the service
    job, _ = _evaluating_job(target_model, corpus)
    _, cert = services.job_finish(job=job, artifact_uri="file:///x", weights_sha256="e" * 64, reports={},
                                  verdicts=VERDICTS, device_seconds=1.0)
    return Certificate.objects.get(pk=cert.pk)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "evaluation.certificate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})


def test_certificate_embeds_its_issuance_event_sealed_in_the_same_transaction(issued):
    doc = issued.as_document()
    block = doc["transparency"]
    event = AuditEvent.objects.get(verb="certificate.issued", object_id=str(issued.public_id))
    assert block["schema"] == "audit-inclusion/1" and doc["payload"]["audit_log"] == {"inclusion": "audit-inclusion/1"}
    assert block["leaf"]["id"] == event.id and block["leaf"]["after"]["payload_sha256"] == payload_digest(doc["payload"])
    assert AuditLeaf.objects.get(event_id=event.id).leaf_index == block["leaf_index"]
    head = SignedTreeHead.objects.get(tree_size=block["tree_head"]["payload"]["tree_size"])
    assert head.as_document() == block["tree_head"] and head.tree_size == block["leaf_index"] + 1
    result = verify_certificate(doc, certificate_keys.published_keys())
    assert result.valid and result.audit_log["leaf_index"] == block["leaf_index"]
    assert result.audit_log["tree_size"] == head.tree_size and result.audit_log["root_hash"] == head.root_hash


def test_offline_verifier_checks_the_embedded_proof(issued, tmp_path):
    call_command("certificate_keys_export", str(tmp_path / "keys.json"))
    doc = issued.as_document()
    (tmp_path / "cert.json").write_text(json.dumps(doc))
    ok = _cli("verify", str(tmp_path / "cert.json"), "--keys", str(tmp_path / "keys.json"))
    assert ok.returncode == 0, ok.stderr
    assert f"issuance event is leaf {doc['transparency']['leaf_index']} of the audit log's signed tree head" in ok.stdout

    def verdict(mutate):
        bad = copy.deepcopy(doc)
        mutate(bad)
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        run = _cli("verify", str(tmp_path / "bad.json"), "--keys", str(tmp_path / "keys.json"))
        assert run.returncode == 1, run.stdout
        return run.stderr

    def flip_proof(d):
        p = d["transparency"]["inclusion_proof"]
        p[0] = ("0" if p[0][0] != "0" else "1") + p[0][1:]

    assert "inclusion proof does not lead to the tree head's root" in verdict(flip_proof)
    assert "records another payload digest" in verdict(
        lambda d: d["transparency"]["leaf"]["after"].update(payload_sha256="0" * 64))
    assert "signed tree head does not verify: bad signature" in verdict(
        lambda d: d["transparency"]["tree_head"]["payload"].update(tree_size=99))
    assert "declares an embedded inclusion proof and the document has none" in verdict(
        lambda d: d.pop("transparency"))
    assert "not in a tree of" in verdict(lambda d: d["transparency"].update(leaf_index=10**6))


def test_truncation_after_issuance_is_detected_through_the_certificates_tree_head(issued):
    sc.record(2, start=10)
    call_command("audit_log_seal")
    assert audit_log_verify().valid
    size = issued.transparency["tree_head"]["payload"]["tree_size"]
    # the table owner truncates the log to before the certificate, tree heads and leaves included
    first_gone = AuditLeaf.objects.get(leaf_index=size - 1).event_id
    sc.tamper(("DELETE FROM requests_app_signedtreehead WHERE tree_size >= %s", [size]),
              ("DELETE FROM requests_app_auditleaf WHERE leaf_index >= %s", [size - 1]),
              ("DELETE FROM requests_app_auditevent WHERE id >= %s", [first_gone]))
    r = audit_log_verify()
    assert not r.valid and r.tree_size == 0
    assert f"certificate {issued.public_id} signs {size} leaves; the log holds {size - 1}: the log was truncated" \
        in r.problems
