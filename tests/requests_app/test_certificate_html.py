"""Portal rendering of certificates: three-valued checks, greyed claims when invalid (issue 12)."""
import json

from django.test import Client
from django.utils import timezone

from evaluation.certificate import sign_certificate
from requests_app.certificates import signing_key

CHECKS = [
    {"name": "verbmem_forget", "value": 3.0, "threshold": 8.0, "comparison": "<=", "passed": True, "status": "pass"},
    {"name": "privleak", "value": -12.0, "threshold": 5.0, "comparison": "abs<=", "passed": True,
     "status": "inconclusive"},
    {"name": "no_collapse", "value": None, "threshold": 0.5, "comparison": "<=", "passed": False,
     "status": "undefined"},
]


def test_check_page_shows_inconclusive_and_greys_an_invalid_certificate(db, settings, tmp_path):
    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"
    doc = sign_certificate({"certificate_id": "c-1", "schema": "erasure-certificate/1",
                            "issued_at": timezone.now().isoformat(), "forget_set": {"count": 20},
                            "verdicts": {"passed": True, "checks": CHECKS}}, signing_key())
    body = Client().post("/certificates/check/", {"document": json.dumps(doc)}).content.decode()
    results = [chunk.split('"', 1)[0] for chunk in body.split('data-result="')[1:]]
    assert results == ["pass", "inconclusive", "inconclusive"]
    assert "Valid certificate" in body and "certificate-claims unverified" not in body
    dup = json.dumps(doc).replace('"count": 20', '"count": 21, "count": 20')
    body = Client().post("/certificates/check/", {"document": dup}).content.decode()
    assert "Invalid certificate" in body and "duplicate key" in body and "not strict JSON" in body
    assert "certificate-claims unverified" in body and "Not confirmed:" in body
