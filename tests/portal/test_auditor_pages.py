"""Issue 21 item 10: the auditor's dashboard pages (Django test client; the browser walk is in
``test_browser_staff.py``): audit trail filters, pagination and exports, the log verification
result, the CCPA §7102 report with plain dates, the published keys."""
from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from requests_app import services
from requests_app.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(users, forget_subject, settings, tmp_path):
    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"
    tickets = [services.ticket_create(requester=users["owner"], subject=forget_subject, jurisdiction="CCPA")[0]
               for _ in range(3)]
    for t in tickets[:2]:
        services.ticket_hold(ticket=t, actor=users["reviewer"], reason="litigation")
    return tickets


def test_auditor_only_pages(client_for, trail):
    for path in ("/dashboard/audit/", "/dashboard/audit/verify/", "/dashboard/reports/ccpa/", "/dashboard/keys/",
                 "/dashboard/audit/export.csv"):
        assert client_for("auditor").get(path).status_code == 200, path
        assert client_for("approver").get(path).status_code == 200, path
        assert client_for("operator").get(path).status_code == 403, path
        assert client_for("owner").get(path).status_code == 403, path
    assert client_for("auditor").get("/dashboard/audit/export.xml").status_code == 404
    assert "Audit</a>" in client_for("auditor").get("/dashboard/").content.decode()


def test_trail_filters_and_pages(client_for, trail, users):
    c = client_for("auditor")
    body = c.get("/dashboard/audit/", {"verb": "ticket.on_hold"}).content.decode()
    assert body.count('data-verb="ticket.on_hold"') == 2 and 'data-verb="ticket.submitted"' not in body
    body = c.get("/dashboard/audit/", {"object_id": str(trail[2].public_id)}).content.decode()
    assert body.count("<tr data-verb=") == 1
    body = c.get("/dashboard/audit/", {"actor": "reviewer"}).content.decode()
    assert body.count("<tr data-verb=") == 2
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    body = c.get("/dashboard/audit/", {"start": tomorrow}).content.decode()
    assert "No event matches these filters." in body
    r = c.get("/dashboard/audit/", {"start": "2026-02-30"})
    assert r.status_code == 200 and "No event matches" in r.content.decode()
    from django.db import transaction

    from requests_app.audit import audit_event_record

    with transaction.atomic():  # 60 events in all: two pages of 50
        for _ in range(60 - AuditEvent.objects.count()):
            audit_event_record(actor="system", verb="ticket.due_soon", obj=trail[2], after={})
    r = c.get("/dashboard/audit/")
    body = r.content.decode()
    assert body.count("<tr data-verb=") == 50 and "Page 1 of 2" in body and len(r.content) < 120_000
    assert c.get("/dashboard/audit/", {"page": 2}).content.decode().count("<tr data-verb=") == 10


def test_exports_follow_the_filters(client_for, trail):
    c = client_for("auditor")
    r = c.get("/dashboard/audit/export.csv", {"verb": "ticket.on_hold"})
    assert r["Content-Type"] == "text/csv" and "attachment" in r["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert [row["verb"] for row in rows] == ["ticket.on_hold", "ticket.on_hold"]
    assert json.loads(rows[0]["after"])["hold_reason"] == "litigation"
    r = c.get("/dashboard/audit/export.json", {"verb": "ticket.on_hold"})
    events = json.loads(r.content)
    assert len(events) == 2 and events[0]["id"] < events[1]["id"]  # oldest first
    page = c.get("/dashboard/audit/", {"verb": "ticket.on_hold"}).content.decode()
    assert 'href="/dashboard/audit/export.csv?verb=ticket.on_hold"' in page


def test_verification_page_valid_then_tampered(client_for, trail):
    from django.db import connection

    from requests_app.audit_log import audit_log_seal

    audit_log_seal()
    c = client_for("auditor")
    body = c.get("/dashboard/audit/verify/").content.decode()
    assert 'data-valid="true"' in body and "The audit log is intact" in body
    first = AuditEvent.objects.order_by("id").first()
    with connection.cursor() as cur:  # an insider edits a sealed event in the database
        cur.execute("UPDATE requests_app_auditevent SET actor = 'someone-else' WHERE id = %s", [first.id])
    body = c.get("/dashboard/audit/verify/").content.decode()
    assert 'data-valid="false"' in body and "no longer match their leaf" in body


def test_ccpa_report_accepts_plain_dates(client_for, trail, api):
    today = timezone.now().date()
    c = client_for("auditor")
    body = c.get("/dashboard/reports/ccpa/", {"start": today.isoformat(), "end": today.isoformat()}).content.decode()
    assert 'data-key="received">3<' in body and 'data-key="open">3<' in body
    yesterday = (today - timedelta(days=1)).isoformat()
    body = c.get("/dashboard/reports/ccpa/", {"start": yesterday, "end": yesterday}).content.decode()
    assert 'data-key="received">0<' in body
    r = c.get("/dashboard/reports/ccpa/", {"start": today.isoformat(), "end": yesterday})
    assert r.status_code == 400 and "before the start date" in r.content.decode()
    # the API takes a plain date too (it refused it as naive before)
    r = api("auditor").get("/api/v1/reports/ccpa/", {"start": today.isoformat(), "end": today.isoformat()})
    assert r.status_code == 200 and r.json()["received"] == 3
    assert r.json()["period"]["end"] == f"{today + timedelta(days=1)}T00:00:00+00:00"
    assert api("auditor").get("/api/v1/reports/ccpa/", {"start": "2026-13-01"}).status_code == 400
    assert api("auditor").get("/api/v1/reports/ccpa/", {"start": "2026-01-01T00:00:00"}).status_code == 400


def test_keys_page_lists_the_current_key(client_for, trail):
    from requests_app.audit_log import audit_log_seal
    from requests_app.certificate_keys import keys_document

    audit_log_seal()  # creates the signing key
    key = keys_document()["keys"][0]
    body = client_for("auditor").get("/dashboard/keys/").content.decode()
    assert key["key_id"] in body and key["public_key_raw_base64"] in body and 'data-status="current"' in body


def test_dates_at_the_calendar_end_are_refused_not_500(client_for, trail, api):
    """Regression (fresh-user trial): 9999-12-31 as an inclusive end date overflowed (OverflowError, a 500)
    on the CCPA report, the audit trail and its export, and in the API."""
    c = client_for("auditor")
    far = {"start": "9999-12-31", "end": "9999-12-31"}
    r = c.get("/dashboard/reports/ccpa/", far)
    assert r.status_code == 400 and "between the years 1900 and 9000" in r.content.decode()
    for path in ("/dashboard/audit/", "/dashboard/audit/export.csv"):
        assert c.get(path, far).status_code < 500, path
    assert api("auditor").get("/api/v1/reports/ccpa/", far).status_code == 400
