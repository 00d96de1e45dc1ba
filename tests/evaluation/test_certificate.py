import base64
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evaluation.certificate import (
    canonical_json,
    key_id,
    load_or_create_signing_key,
    public_key_pem,
    render_certificate_html,
    sign_certificate,
    verify_certificate,
)

PAYLOAD = {
    "certificate_id": "c-1",
    "subject": "pseudonym-7f3a",
    "metrics": {"verbmem_forget": {"value": 12.5, "ci95": [10.0, 15.0], "n": 40}},
    "verdicts": {
        "checks": [
            {
                "name": "privleak",
                "value": -2.0,
                "ci95": None,
                "threshold": 5.0,
                "passed": True,
                "detail": "<script>alert(1)</script>",
            }
        ]
    },
    "not_verified": ["no extraction attacks"],
    "note": "नमस्ते é",
}


def test_canonical_json_bytes():
    obj = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": "न"}, "c": 'x"y'}
    assert (
        canonical_json(obj) == '{"a":{"y":"न","z":"é"},"b":[1,2.5,null,true],"c":"x\\"y"}'.encode()
    )
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError):
        canonical_json({1: "int key"})


def test_key_file_created_0600_and_reloaded(tmp_path):
    path = tmp_path / "keys" / "signing.pem"
    k1 = load_or_create_signing_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    k2 = load_or_create_signing_key(path)
    assert key_id(k1.public_key()) == key_id(k2.public_key())
    kid = key_id(k1)
    assert len(kid) == 16 and int(kid, 16) >= 0


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


def test_sign_then_verify(key):
    cert = sign_certificate(PAYLOAD, key)
    assert set(cert) == {"payload", "signature", "key_id", "algorithm"}
    assert cert["algorithm"] == "Ed25519" and len(base64.b64decode(cert["signature"])) == 64
    keys = {key_id(key.public_key()): key.public_key()}
    r = verify_certificate(cert, keys)
    assert r.valid and r.reason == "ok"
    # JSON text round trip and PEM-published keys work too
    assert verify_certificate(canonical_json(cert), {cert["key_id"]: public_key_pem(key)}).valid


def test_any_changed_byte_in_payload_is_detected(key):
    cert = sign_certificate(PAYLOAD, key)
    keys = {cert["key_id"]: key.public_key()}
    msg = canonical_json(PAYLOAD)
    tested = 0
    for i in range(len(msg)):
        mutated = msg[:i] + bytes([msg[i] ^ 0x01]) + msg[i + 1 :]
        try:
            payload = json.loads(mutated.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue  # not a parseable payload any more
        if not isinstance(payload, dict):
            continue
        r = verify_certificate({**cert, "payload": payload}, keys)
        assert not r.valid
        assert r.reason in ("bad signature",) or r.reason.startswith("malformed"), r.reason
        tested += 1
    assert tested > len(msg) // 2


def test_changed_value_gives_bad_signature(key):
    cert = sign_certificate(PAYLOAD, key)
    forged = json.loads(canonical_json(cert))
    forged["payload"]["metrics"]["verbmem_forget"]["value"] = 12.6
    r = verify_certificate(forged, {cert["key_id"]: key.public_key()})
    assert not r.valid and r.reason == "bad signature"


def test_unknown_key_and_wrong_algorithm_and_malformed(key):
    cert = sign_certificate(PAYLOAD, key)
    other = Ed25519PrivateKey.generate().public_key()
    r = verify_certificate(cert, {key_id(other): other})
    assert not r.valid and r.reason.startswith("signed by an unknown key")
    # a key published under the wrong id is not trusted
    r = verify_certificate(cert, {cert["key_id"]: other})
    assert not r.valid and r.reason.startswith("signed by an unknown key")
    keys = {cert["key_id"]: key.public_key()}
    r = verify_certificate({**cert, "algorithm": "RS256"}, keys)
    assert not r.valid and r.reason.startswith("unsupported algorithm")
    for bad in (
        {k: v for k, v in cert.items() if k != "signature"},
        {**cert, "signature": "%%%"},
        {**cert, "payload": [1, 2]},
        "not json",
        [cert],
        {**cert, "extra": 1},
    ):
        r = verify_certificate(bad, keys)
        assert not r.valid and r.reason.startswith("malformed"), (bad, r)
    sig = bytearray(base64.b64decode(cert["signature"]))
    sig[0] ^= 1
    r = verify_certificate({**cert, "signature": base64.b64encode(bytes(sig)).decode()}, keys)
    assert not r.valid and r.reason == "bad signature"


def test_html_escapes_everything(key):
    cert = sign_certificate(PAYLOAD, key)
    page = render_certificate_html(
        cert, verify_certificate(cert, {cert["key_id"]: key.public_key()})
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "नमस्ते" in page and "privleak" in page and "no extraction attacks" in page
    assert page.startswith("<!DOCTYPE html>")
