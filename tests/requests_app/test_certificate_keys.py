"""Published keys, rotation, export, strict verification over the API and ``manage.py
verify_certificate`` on an auditor's machine (issue 12 item 6)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from evaluation.certificate import sign_certificate
from requests_app import certificate_keys
from requests_app.models import AuditEvent

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def keydir(settings, tmp_path):
    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"
    return tmp_path / "keys"


def _signed(**extra):
    return sign_certificate({"certificate_id": "c-1", "schema": "erasure-certificate/1",
                             "issued_at": timezone.now().isoformat(), "forget_set": {"count": 20}, **extra},
                            certificate_keys.signing_key())


def test_keys_endpoint_and_well_known_list_public_keys_only(db, client, keydir):
    assert client.get("/api/v1/certificates/keys/").json()["keys"] == []  # nothing created by reading
    assert not keydir.exists()
    doc = _signed()
    r = client.get("/api/v1/certificates/keys/")
    assert r.status_code == 200 and r["Cache-Control"] == "public, max-age=300"
    body = r.json()
    assert body["schema"] == "erasure-certificate-keys/1" and len(body["keys"]) == 1
    entry = body["keys"][0]
    assert entry["key_id"] == doc["key_id"] and entry["status"] == "current" and entry["algorithm"] == "Ed25519"
    assert entry["valid_from"] is None and entry["valid_until"] is None  # the first key: open bounds
    assert entry["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in r.content.decode()
    wk = client.get("/.well-known/erasure-certificate-keys.json")
    assert wk.status_code == 200 and wk.json() == body and wk["Access-Control-Allow-Origin"] == "*"


def test_rotation_keeps_old_certificates_verifiable_and_export(db, client, keydir, tmp_path):
    old_doc = _signed()
    call_command("certificate_key_rotate")
    new_doc = _signed(certificate_id="c-2")
    assert new_doc["key_id"] != old_doc["key_id"]
    keys = {k["key_id"]: k for k in client.get("/api/v1/certificates/keys/").json()["keys"]}
    assert keys[old_doc["key_id"]]["status"] == "retired" and keys[old_doc["key_id"]]["valid_until"]
    assert keys[new_doc["key_id"]]["status"] == "current" and keys[new_doc["key_id"]]["valid_from"]
    for doc in (old_doc, new_doc):
        r = client.post("/api/v1/certificates/verify/", json.dumps(doc), content_type="application/json")
        assert r.status_code == 200 and r.json()["valid"] is True, r.json()
    assert AuditEvent.objects.filter(verb="certificate_key.rotated", object_id=new_doc["key_id"]).count() == 1
    # the retired private key is gone: only the new one is on disk
    assert [p.name for p in keydir.glob("*.pem*")] == ["k.pem"]
    keys_file = tmp_path / "export.json"
    call_command("certificate_keys_export", str(keys_file))
    exported = json.loads(keys_file.read_text())
    assert {k["key_id"] for k in exported["keys"]} == {old_doc["key_id"], new_doc["key_id"]}


def test_interrupted_rotation_is_completed_or_undone(db, keydir):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    first = certificate_keys.signing_key()
    # crash after writing the next key but before the key set: the rotation never happened
    nxt = keydir / "k.pem.next"
    certificate_keys._write_private(nxt, Ed25519PrivateKey.generate())
    assert certificate_keys.signing_key().public_key().public_bytes_raw() == first.public_key().public_bytes_raw()
    assert not nxt.exists()


def test_verify_endpoint_is_strict_on_raw_bytes(db, client, keydir):
    doc = _signed()
    text = json.dumps(doc)
    post = lambda body: client.post("/api/v1/certificates/verify/", body, content_type="application/json")  # noqa: E731
    ok = post(text)
    assert ok.status_code == 200 and ok.json()["valid"] is True and ok.json()["key_status"] == "current"
    assert ok.json()["document_type"] == "erasure_certificate"
    dup = post(text.replace('"count": 20', '"count": 21, "count": 20'))
    assert dup.status_code == 400 and dup.json() == {"valid": False, "reason": "malformed JSON: duplicate key 'count'"}
    assert post("{not json").status_code == 400
    nan = post(text.replace('"count": 20', '"count": NaN'))
    assert nan.status_code == 400 and "NaN" in nan.json()["reason"]
    num = post(text.replace('"count": 20', '"count": 2e1'))
    assert num.status_code == 400 and "non-canonical number 2e1" in num.json()["reason"]
    unknown = post(json.dumps({**doc, "key_id": "0123456789abcdef"}))
    assert unknown.status_code == 200 and unknown.json()["valid"] is False
    assert unknown.json()["reason"].startswith("signed by an unknown key")


def _manage(cwd, *args, key_path):
    env = {**os.environ, "CERTIFICATE_SIGNING_KEY_PATH": str(key_path), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), "verify_certificate", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_manage_verify_certificate_never_creates_a_signing_key(db, keydir, tmp_path):
    doc = _signed()
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    call_command("certificate_keys_export", str(auditor / "keys.json"))
    (auditor / "cert.json").write_text(json.dumps(doc, indent=2))
    (auditor / "dup.json").write_text(json.dumps(doc).replace('"count": 20', '"count": 21, "count": 20'))
    absent_key = auditor / "var" / "keys" / "certificate_ed25519.pem"  # as on a machine without the issuer's key
    ok = _manage(auditor, "cert.json", "--keys", "keys.json", key_path=absent_key)
    assert ok.returncode == 0 and ok.stdout.startswith("VALID: erasure certificate c-1"), ok.stderr
    dup = _manage(auditor, "dup.json", "--keys", "keys.json", key_path=absent_key)
    assert dup.returncode == 1 and "INVALID" in dup.stderr and "duplicate key" in dup.stderr
    none = _manage(auditor, "cert.json", key_path=absent_key)
    assert none.returncode == 2 and "no published keys on this machine" in none.stderr
    assert not absent_key.exists() and not absent_key.parent.exists()
    assert not list(auditor.rglob("*.pem"))
