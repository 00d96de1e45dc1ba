"""Strict parsing, published key sets with validity, the standalone verifier CLI and the
three-valued HTML (issue 12 items 5-6). No Django."""
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evaluation.certificate import (
    canonical_json,
    render_certificate_html,
    sign_certificate,
    verify_certificate,
)
from evaluation.certificate_html import check_result
from evaluation.certificate_keys import KeySetError, PublishedKey, keyset_document, keyset_parse
from evaluation.strict_json import StrictJSONError, strict_loads

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _payload(issued_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC), **extra):
    return {"certificate_id": "c-9", "schema": "erasure-certificate/1", "issued_at": issued_at.isoformat(),
            "issuer": "Test", "forget_set": {"count": 20}, "dp": {"delta": 1e-05, "eps": 8.0, "big": 3e63},
            **extra}


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


def _text_with(cert: dict, old: str, new: str) -> str:
    text = json.dumps(cert)
    assert old in text, (old, text)
    return text.replace(old, new, 1)


# --- strict parser --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, reason", [
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ('{"a": 1.50}', "non-canonical number 1.50"),
    ('{"a": 1E5}', "non-canonical number 1E5"),
    ('{"a": 1e5}', "non-canonical number 1e5 (the canonical form of this value is 100000.0)"),
    ('{"a": 0.10000000000000001}', "non-canonical number 0.10000000000000001"),
    ('{"a": -0}', "non-canonical number -0"),
    ('{"a": 1e400}', "does not fit a double"),
    ('{"a": 1', "not valid JSON"),
    ("\ufeff{}", "not valid JSON"),
])
def test_strict_loads_refuses_with_reason(text, reason):
    with pytest.raises(StrictJSONError) as err:
        strict_loads(text)
    assert reason in err.value.reason


def test_strict_loads_accepts_canonical_forms_and_refuses_deep_nesting():
    assert strict_loads('{"a":1.0,"b":1,"c":1e-05,"d":3e+63,"e":-0.0,"f":[true,null,"é"]}') == {
        "a": 1.0, "b": 1, "c": 1e-05, "d": 3e63, "e": -0.0, "f": [True, None, "é"]}
    assert strict_loads(canonical_json(_payload())) == _payload()
    with pytest.raises(StrictJSONError, match="nested deeper than 64"):
        strict_loads("[" * 65 + "]" * 65)
    with pytest.raises(StrictJSONError, match="not UTF-8"):
        strict_loads(b'{"a":"\xff"}')


# --- verification of documents as text ------------------------------------------------------------

def test_duplicate_key_nan_and_noncanonical_numbers_are_invalid(key):
    cert = sign_certificate(_payload(), key)
    keys = {cert["key_id"]: PublishedKey.of(key)}
    assert verify_certificate(json.dumps(cert), keys).valid
    # the same signature with a second, conflicting "count": a lenient parser keeps the last one
    dup = _text_with(cert, '"count": 20', '"count": 21, "count": 20')
    r = verify_certificate(dup, keys)
    assert not r.valid and r.reason == "malformed JSON: duplicate key 'count'"
    r = verify_certificate(_text_with(cert, '"eps": 8.0', '"eps": NaN'), keys)
    assert not r.valid and r.reason == "malformed JSON: NaN is not a JSON number"
    # 8.00 parses to the signed value 8.0: a lenient verifier would call it valid
    r = verify_certificate(_text_with(cert, '"eps": 8.0', '"eps": 8.00'), keys)
    assert not r.valid and r.reason.startswith("malformed JSON: non-canonical number 8.00")
    r = verify_certificate(_text_with(cert, '"big": 3e+63', '"big": 3E63'), keys)
    assert not r.valid and "non-canonical number 3E63" in r.reason
    # 1.0 vs 1: both canonical, but different values — the signature catches it
    r = verify_certificate(_text_with(cert, '"eps": 8.0', '"eps": 8'), keys)
    assert not r.valid and r.reason == "bad signature"


def test_payload_that_is_not_canonical_json_is_invalid(key):
    cert = sign_certificate(_payload(), key)
    keys = {cert["key_id"]: PublishedKey.of(key)}
    text = _text_with(cert, '"issuer": "Test"', '"issuer": "\\ud800"')  # a lone surrogate
    r = verify_certificate(text, keys)
    assert not r.valid and r.reason.startswith("malformed: payload is not canonical JSON")


def test_unknown_key_is_signed_by_an_unknown_key(key):
    cert = sign_certificate(_payload(), key)
    other = PublishedKey.of(Ed25519PrivateKey.generate())
    r = verify_certificate(json.dumps(cert), {other.key_id: other})
    assert not r.valid and r.reason == f"signed by an unknown key: key id {cert['key_id']} is not published"


def test_key_validity_window_and_rotation(key):
    new = Ed25519PrivateKey.generate()
    retired = PublishedKey.of(key, status="retired", valid_from=T0, valid_until=T1)
    current = PublishedKey.of(new, valid_from=T1)
    keys = keyset_parse(json.dumps(keyset_document([retired, current], issuer="Test")))
    assert [k.status for k in keys.values()] == ["current", "retired"]
    old_cert = sign_certificate(_payload(dt.datetime(2026, 3, 1, tzinfo=dt.UTC)), key)
    r = verify_certificate(json.dumps(old_cert), keys)
    assert r.valid and r.key_status == "retired"  # rotated key: the old certificate still verifies
    late = sign_certificate(_payload(dt.datetime(2026, 7, 1, tzinfo=dt.UTC)), key)
    r = verify_certificate(json.dumps(late), keys)
    assert not r.valid and r.reason.startswith("key used outside its validity")
    assert "2026-07-01T00:00:00+00:00" in r.reason
    backdated = sign_certificate(_payload(dt.datetime(2026, 3, 1, tzinfo=dt.UTC)), new)
    r = verify_certificate(json.dumps(backdated), keys)
    assert not r.valid and r.reason.startswith("key used outside its validity")
    no_date = sign_certificate({"certificate_id": "x"}, key)
    r = verify_certificate(json.dumps(no_date), keys)
    assert not r.valid and "states no issued_at" in r.reason
    ok = sign_certificate(_payload(dt.datetime(2026, 7, 1, tzinfo=dt.UTC)), new)
    assert verify_certificate(json.dumps(ok), keys).key_status == "current"


def test_keyset_parse_refuses_inconsistent_sets(key):
    good = keyset_document([PublishedKey.of(key)], issuer="Test")
    entry = good["keys"][0]
    other = keyset_document([PublishedKey.of(Ed25519PrivateKey.generate())], issuer="Test")["keys"][0]
    cases = [
        ({**good, "schema": "x"}, "not a key set"),
        ({**good, "keys": [{**entry, "key_id": "0" * 16}]}, "does not match its public key"),
        ({**good, "keys": [{**entry, "public_key_raw_base64": other["public_key_raw_base64"]}]}, "PEM and raw"),
        ({**good, "keys": [entry, entry]}, "listed twice"),
        ({**good, "keys": [entry, other]}, "more than one key has status 'current'"),
        ({**good, "keys": [{**entry, "status": "revoked"}]}, "status must be one of"),
        ({**good, "keys": [{**entry, "valid_from": "2026-01-01T00:00:00"}]}, "no UTC offset"),
    ]
    for doc, reason in cases:
        with pytest.raises(KeySetError, match=reason):
            keyset_parse(doc)
    with pytest.raises(KeySetError, match="duplicate key"):
        keyset_parse('{"schema": "erasure-certificate-keys/1", "keys": [], "keys": []}')


# --- standalone CLI -------------------------------------------------------------------------------

def _cli(cwd, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    env["PYTHONPATH"] = str(ROOT)
    env["HOME"] = str(cwd)
    return subprocess.run([sys.executable, "-m", "evaluation.certificate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_standalone_cli_with_only_the_keys_json(tmp_path, key):
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    keys_file = auditor / "keys.json"
    keys_file.write_text(json.dumps(keyset_document([PublishedKey.of(key, valid_from=T0)], issuer="Test")))
    cert = sign_certificate(_payload(), key)
    (auditor / "good.json").write_text(json.dumps(cert, indent=2))
    (auditor / "dup.json").write_text(_text_with(cert, '"count": 20', '"count": 21, "count": 20'))
    (auditor / "other.json").write_text(json.dumps(sign_certificate(_payload(), Ed25519PrivateKey.generate())))
    before = sorted(p.relative_to(auditor) for p in auditor.rglob("*"))

    ok = _cli(auditor, "verify", "good.json", "--keys", "keys.json")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("VALID: erasure certificate c-9 issued 2026-03-01T00:00:00+00:00 by Test")
    dup = _cli(auditor, "verify", "dup.json", "--keys", "keys.json")
    assert dup.returncode == 1 and "INVALID" in dup.stderr and "duplicate key 'count'" in dup.stderr
    other = _cli(auditor, "verify", "other.json", "--keys", "keys.json")
    assert other.returncode == 1 and "signed by an unknown key" in other.stderr
    missing = _cli(auditor, "verify", "good.json", "--keys", "nope.json")
    assert missing.returncode == 2 and "unusable key set" in missing.stderr
    # nothing was created on the auditor's machine: no private key, no key set, no var/ folder
    assert sorted(p.relative_to(auditor) for p in auditor.rglob("*")) == before
    assert not list(auditor.rglob("*.pem"))


def test_cli_module_imports_no_django():
    code = ("import sys, evaluation.certificate as c; "
            "print(any(m == 'django' or m.startswith('django.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False", out.stderr


# --- three-valued HTML ----------------------------------------------------------------------------

CHECKS = [
    {"name": "verbmem_forget", "value": 3.0, "threshold": 8.0, "passed": True, "status": "pass"},
    {"name": "privleak", "value": -12.0, "ci95": [-30.0, 4.0], "threshold": 5.0, "passed": True,
     "status": "inconclusive"},
    {"name": "knowmem_retain", "value": 10.0, "threshold": 40.0, "passed": False, "status": "fail"},
    {"name": "no_collapse", "value": None, "threshold": 0.5, "passed": False, "status": "undefined"},
]


def test_check_result_is_three_valued():
    assert [check_result(c)[0] for c in CHECKS] == ["pass", "inconclusive", "fail", "inconclusive"]
    assert check_result({"passed": True})[0] == "pass" and check_result({"passed": False})[0] == "fail"
    assert check_result({"passed": True, "status": "weird"})[0] == "inconclusive"
    assert check_result({"passed": False, "status": "pass"})[0] == "inconclusive"


def test_html_shows_real_results_and_greys_an_invalid_certificate(key):
    cert = sign_certificate(_payload(verdicts={"passed": True, "checks": CHECKS}), key)
    keys = {cert["key_id"]: PublishedKey.of(key)}
    page = render_certificate_html(cert, verify_certificate(cert, keys))
    results = [chunk.split('"', 1)[0] for chunk in page.split('data-result="')[1:]]
    assert results == ["pass", "inconclusive", "fail", "inconclusive"]
    assert 'class="unverified"' not in page and "Signature: valid" in page
    forged = json.loads(json.dumps(cert))
    forged["payload"]["forget_set"]["count"] = 21
    page = render_certificate_html(forged, verify_certificate(forged, keys))
    assert "Signature: INVALID" in page and '<div class="unverified">' in page
    assert page.index('<div class="unverified">') < page.index("<h2>Checks</h2>")


def test_suppression_notice_is_titled_as_such(key):
    notice = sign_certificate({**_payload(), "schema": "suppression-notice/1",
                               "statement": "The weights still hold the data."}, key)
    page = render_certificate_html(notice, verify_certificate(notice, {notice["key_id"]: PublishedKey.of(key)}))
    assert "<h1>Suppression notice (not an erasure certificate) c-9</h1>" in page
    assert "Not an erasure certificate." in page and "The weights still hold the data." in page


def test_uploaded_data_mode_accepts_any_finite_number_form_and_keeps_the_other_rules():
    import pytest

    from evaluation.strict_json import StrictJSONError, strict_loads

    assert strict_loads('{"f": [1.50, 1E5, -0]}', canonical_numbers=False) == {"f": [1.5, 100000.0, 0]}
    for bad in ('{"a": 1, "a": 2}', '{"a": NaN}', '{"a": 1e999}', '{"a": ' + "9" * 5000 + "}"):
        with pytest.raises(StrictJSONError):
            strict_loads(bad, canonical_numbers=False)
