"""Issue 13 item 5: each class of bad input is 400 with a message, never a 500 (one test per class)."""
import base64
import json

import pytest
from django.test import Client

DEEP = "[" * 100_000 + "]" * 100_000


def _raw(client, path, body: str, **headers):
    return client.post(path, data=body, content_type="application/json", **headers)


def _ticket(api, subject):
    r = api("owner").post("/api/v1/tickets/", {"subject_name": subject.display_name}, format="json")
    assert r.status_code == 201, r.content
    return r.json()["id"]


@pytest.mark.parametrize("value", ["2026-02-30T10:00:00Z", "2026-13-01T10:00:00Z", "2026-01-01T25:00:00Z",
                                   "2026-01-01T10:00:00+25:00"])
def test_impossible_calendar_dates_are_400(api, forget_subject, value):
    r = api("reviewer").post("/api/v1/tickets/", {"subject_name": forget_subject.display_name,
                                                  "received_at": value}, format="json")
    assert r.status_code == 400, r.content
    assert "received_at" in r.json()
    r = api("auditor").get("/api/v1/reports/ccpa/", {"start": value})
    assert r.status_code == 400 and r.json()["detail"].startswith("start:")


@pytest.mark.parametrize("value", ["9999-12-31T23:00:00-05:00", "9999-12-31T20:00:00+00:00",
                                   "0001-01-01T00:30:00+05:00", "9500-01-01T00:00:00Z"])
def test_dates_near_the_calendar_ends_are_400(api, forget_subject, value):
    r = api("reviewer").post("/api/v1/tickets/", {"subject_name": forget_subject.display_name,
                                                  "received_at": value}, format="json")
    assert r.status_code == 400, r.content
    assert "out of range" in json.dumps(r.json())
    r = api("auditor").get("/api/v1/reports/ccpa/", {"end": value})
    assert r.status_code == 400 and "out of range" in r.json()["detail"]


def test_integers_beyond_64_bits_in_id_lists_are_400(api, forget_subject):
    tid = _ticket(api, forget_subject)
    for ids in ([2**63], [2**70], [10**30]):
        r = api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2", "record_ids": ids},
                                 format="json")
        assert r.status_code == 400, (ids, r.content)
    r = api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2", "record_ids": [2**63 - 1]},
                             format="json")
    assert r.status_code != 400 or "record_ids" not in r.json()  # in range: reaches the workflow (409 here)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_non_finite_floats_in_json_are_400(api, forget_subject, literal):
    tid = _ticket(api, forget_subject)
    body = '{"method": "dp2", "hyperparameters": {"lr": ' + literal + "}}"
    r = _raw(api("approver"), f"/api/v1/tickets/{tid}/approve/", body)
    assert r.status_code == 400, r.content
    assert "JSON parse error" in r.json()["detail"]


@pytest.mark.parametrize("body", [
    '{"method": "dp2", "hyperparameters": {"note": "a\\u0000b"}}',
    '{"method": "dp2", "hyperparameters": {"a\\u0000": 1}}',
    '{"method": "dp2", "hyperparameters": {"note": "\\ud800"}}',
])
def test_nul_characters_and_lone_surrogates_in_json_are_400(api, forget_subject, body):
    tid = _ticket(api, forget_subject)
    r = _raw(api("approver"), f"/api/v1/tickets/{tid}/approve/", body)
    assert r.status_code == 400, r.content
    r = _raw(api("owner"), "/api/v1/tickets/", json.dumps({"subject_name": forget_subject.display_name,
                                                            "description": "x\x00y"}))
    assert r.status_code == 400


def test_overlong_or_malformed_idempotency_key_is_400(api, forget_subject):
    payload = {"subject_name": forget_subject.display_name}
    for key in ("k" * 101, "k" * 5000, "with space", "tab\tkey"):
        r = api("owner").post("/api/v1/tickets/", payload, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert r.status_code == 400, (key[:20], r.content)
        assert "Idempotency-Key" in r.json()["detail"]
    r = api("owner").post("/api/v1/tickets/", payload, format="json", HTTP_IDEMPOTENCY_KEY="k" * 100)
    assert r.status_code == 201


def test_deeply_nested_json_is_400_also_anonymously(api, forget_subject, db):
    assert _raw(api("owner"), "/api/v1/tickets/", DEEP).status_code == 400
    r = _raw(api(None), "/api/v1/certificates/verify/", DEEP)
    assert r.status_code == 400 and r.json()["valid"] is False and "malformed JSON" in r.json()["reason"]
    deep_payload = '{"payload": %s, "signature": "x", "key_id": "k", "algorithm": "Ed25519"}' % (
        '{"a":' * 40 + "1" + "}" * 40)
    r = _raw(api(None), "/api/v1/certificates/verify/", deep_payload)
    assert r.status_code == 400 and r.json()["valid"] is False and "deep" in r.json()["reason"]
    r = Client().post("/certificates/check/", {"document": DEEP})
    assert r.status_code == 400 and "nested deeper than" in r.content.decode()


@pytest.mark.parametrize("document, message", [
    ({"payload": [], "signature": "x", "key_id": "k", "algorithm": "Ed25519"}, "payload must be a JSON object"),
    ({"payload": {}, "signature": 5, "key_id": ["k"], "algorithm": "Ed25519"}, "must be text: signature, key_id"),
    ([1, 2, 3], "is a JSON object"),
    ("just a string", "is a JSON object"),
])
def test_certificate_with_wrong_field_types_on_the_check_page_is_400(db, document, message):
    r = Client().post("/certificates/check/", {"document": json.dumps(document)})
    assert r.status_code == 400
    assert message in r.content.decode()


def test_certificate_payload_fields_of_wrong_types_do_not_break_the_summary(db):
    payload = {"tickets": 5, "limitations": 7, "verdicts": {"checks": 3, "passed": {"x": 1}},
               "model": [1], "forget_set": {"count": {"n": 1}}, "dp_guarantee": {"per_subject_epsilon": [1]},
               "issued_at": {"y": 2}}
    # a well-formed envelope (64-byte signature) around a payload of wrong types: an answer, not bad input
    document = {"payload": payload, "signature": base64.b64encode(bytes(64)).decode(), "key_id": "k",
                "algorithm": "Ed25519"}
    r = Client().post("/certificates/check/", {"document": json.dumps(document)})
    assert r.status_code == 200 and "Invalid certificate" in r.content.decode()
    r = Client().post("/api/v1/certificates/verify/", document, content_type="application/json")
    assert r.status_code == 200 and r.json()["valid"] is False


def test_portal_check_page_rejects_nan_and_not_json(db):
    r = Client().post("/certificates/check/", {"document": '{"payload": {"x": NaN}}'})
    assert r.status_code == 400 and "not valid JSON" in r.content.decode()
    r = Client().post("/certificates/check/", {"document": "not json {"})
    assert r.status_code == 400 and "not valid JSON" in r.content.decode()


def test_extend_with_both_days_and_months_and_full_width_codes_are_400(api, forget_subject):
    """Regression (fresh-user trial): /extend/ with days and months applied both; a full-width
    identity code was counted as a wrong try instead of being malformed input."""
    from requests_app.models import RemovalTicket

    tid = _ticket(api, forget_subject)
    before = RemovalTicket.objects.get(public_id=tid)
    r = api("owner").post(f"/api/v1/tickets/{tid}/verify-identity/", {"code": "０１２３４５"}, format="json")
    assert r.status_code == 400 and "code" in r.json()
    assert RemovalTicket.objects.get(public_id=tid).identity_attempts == before.identity_attempts
    r = api("reviewer").post(f"/api/v1/tickets/{tid}/extend/", {"reason": "complex", "days": 5, "months": 1},
                             format="json")
    assert r.status_code == 400 and "not both" in json.dumps(r.json())
    assert RemovalTicket.objects.get(public_id=tid).due_at == before.due_at


def test_audit_export_in_an_unknown_format_is_400(api, forget_subject):
    """Regression (fresh-user trial): ?as=xml silently answered CSV."""
    _ticket(api, forget_subject)
    assert api("auditor").get("/api/v1/audit-events/export/", {"as": "json"}).status_code == 200
    r = api("auditor").get("/api/v1/audit-events/export/", {"as": "xml"})
    assert r.status_code == 400 and "'csv' or 'json'" in r.json()["detail"]
