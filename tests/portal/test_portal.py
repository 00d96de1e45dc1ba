"""Portal pages with the Django test client: sign-in links, forms, permissions, CSRF."""
from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from requests_app.models import AuditEvent, RemovalTicket

from .conftest import code_from_outbox, link_from_outbox


def _path(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


# --- start page and sign-in -------------------------------------------------------------------------

def test_start_page_explains_the_service(db):
    r = Client().get("/")
    assert r.status_code == 200
    body = r.content.decode()
    assert "Remove your data from our AI models" in body and "certificate" in body
    assert 'href="/signin/"' in body


def test_signin_link_creates_user_once_and_is_one_time(db):
    client = Client()
    r = client.post("/signin/", {"email": "New.Person@Example.org"})
    assert r.status_code == 302 and r["Location"] == "/signin/sent/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.person@example.org"]
    link = _path(link_from_outbox())
    assert client.get(link).status_code == 200  # confirmation page: a GET does not use the link up
    assert not User.objects.filter(email="new.person@example.org").exists()
    r = client.post(link)
    assert r.status_code == 302 and r["Location"] == "/requests/"
    user = User.objects.get(email="new.person@example.org")
    assert client.get("/requests/").status_code == 200
    assert AuditEvent.objects.filter(verb="user.created_by_email_link", object_id=str(user.pk)).exists()
    # the same link again (another browser): refused
    r = Client().post(link)
    assert r.status_code == 400 and "already used" in r.content.decode()
    assert User.objects.filter(email="new.person@example.org").count() == 1


def test_signin_existing_user_and_next(users):
    client = Client()
    client.post("/signin/", {"email": "owner@example.org", "next": "/requests/new/"})
    r = client.post(_path(link_from_outbox()))
    assert r.status_code == 302 and r["Location"] == "/requests/new/"
    assert client.session["_auth_user_id"] == str(users["owner"].pk)
    # an unsafe next URL is dropped
    client = Client()
    client.post("/signin/", {"email": "owner@example.org", "next": "https://evil.example/"})
    r = client.post(_path(link_from_outbox()))
    assert r["Location"] == "/requests/"


def test_staff_lands_on_dashboard(users):
    client = Client()
    client.post("/signin/", {"email": "reviewer@example.org"})
    assert client.post(_path(link_from_outbox()))["Location"] == "/dashboard/"


def test_signin_link_expired_or_tampered(db, settings):
    client = Client()
    client.post("/signin/", {"email": "a@example.org"})
    link = _path(link_from_outbox())
    r = client.post(link[:-3] + "xx/")
    assert r.status_code == 400 and "not valid" in r.content.decode()
    settings.PORTAL_SIGNIN_TTL_SECONDS = -1
    r = client.post(link)
    assert r.status_code == 400 and "expired" in r.content.decode()
    assert not User.objects.filter(email="a@example.org").exists()


def test_signin_form_field_error(db):
    r = Client().post("/signin/", {"email": "not-an-address"})
    assert r.status_code == 200
    body = r.content.decode()
    assert 'id="error-summary"' in body and 'href="#id_email"' in body
    assert 'aria-invalid="true"' in body
    assert not mail.outbox


def test_signout_is_post_only(client_for):
    client = client_for("owner")
    assert client.get("/signout/").status_code == 405
    assert client.post("/signout/").status_code == 302
    assert client.get("/requests/").status_code == 302


# --- request form -----------------------------------------------------------------------------------

def test_request_form_requires_login(db):
    r = Client().get("/requests/new/")
    assert r.status_code == 302 and r["Location"].startswith("/signin/?next=/requests/new/")


def test_request_form_field_errors(client_for, corpus):
    client = client_for("owner")
    page = client.get("/requests/new/").content.decode()
    for label in ("Your name, as it may appear in the data", "Which data should be removed?",
                  "Where do you live?", "Why should the data be removed?"):
        assert label in page
    assert "<fieldset" in page and "<legend" in page
    r = client.post("/requests/new/", {"subject_name": "", "scope": "all", "jurisdiction": "XX"})
    body = r.content.decode()
    assert r.status_code == 200 and 'href="#id_subject_name"' in body and 'href="#id_jurisdiction_0"' in body
    r = client.post("/requests/new/", {"subject_name": "x", "scope": "specific", "jurisdiction": "GDPR"})
    assert "Describe the texts to remove" in r.content.decode()
    assert RemovalTicket.objects.count() == 0
    # a name nobody has is filed anyway (issue 21 item 3; tests/portal/test_unmatched.py)
    r = client.post("/requests/new/", {"subject_name": "Nobody At All", "scope": "all", "jurisdiction": "GDPR"})
    assert r.status_code == 302 and RemovalTicket.objects.get().subject_name_given == "Nobody At All"


def test_upload_over_the_limit_is_a_clear_error(client_for, forget_subject, settings):
    settings.EVIDENCE_MAX_BYTES = 100
    client = client_for("owner")
    big = SimpleUploadedFile("texts.txt", b"x" * 500, content_type="text/plain")
    r = client.post("/requests/new/", {"subject_name": forget_subject.display_name, "scope": "all",
                                       "jurisdiction": "GDPR", "upload": big})
    body = r.content.decode()
    assert r.status_code == 200
    assert "The file is 500\xa0bytes; files may be at most 100\xa0bytes" in body
    assert 'href="#id_upload"' in body
    exe = SimpleUploadedFile("photo.png", b"\x89PNG....", content_type="image/png")
    r = client.post("/requests/new/", {"subject_name": forget_subject.display_name, "scope": "all",
                                       "jurisdiction": "GDPR", "upload": exe})
    assert "Only plain-text files" in r.content.decode()
    assert RemovalTicket.objects.count() == 0


def test_file_request_with_upload_then_confirm_code(client_for, forget_subject, file_request):
    upload = SimpleUploadedFile("about-me.txt", "Ein Text über mich".encode(), content_type="text/plain")
    ticket = file_request(forget_subject, upload=upload, description="Interviews from 2019",
                          legal_ground="art17_1_b", jurisdiction="GDPR")
    assert ticket.status == "submitted" and ticket.legal_ground == "art17_1_b"
    assert "Interviews from 2019" in ticket.description
    assert ticket.evidence_bytes == len("Ein Text über mich".encode())
    client = client_for("owner")
    r = client.get(f"/requests/{ticket.public_id}/verify/")
    assert r.status_code == 200 and "6-digit code" in r.content.decode()
    r = client.post(f"/requests/{ticket.public_id}/verify/", {"code": "12"})
    assert "Enter the 6 digits" in r.content.decode()
    wrong = "000000" if code_from_outbox() != "000000" else "111111"
    r = client.post(f"/requests/{ticket.public_id}/verify/", {"code": wrong})
    assert "This code is not right" in r.content.decode()
    r = client.post(f"/requests/{ticket.public_id}/verify/", {"code": code_from_outbox()})
    assert r.status_code == 302 and r["Location"] == f"/requests/{ticket.public_id}/"
    ticket.refresh_from_db()
    assert ticket.status == "identity_verified"
    page = client.get(r["Location"]).content.decode()
    assert "Request received" in page and "Identity confirmed" in page and "(you)" in page
    listing = client.get("/requests/").content.decode()
    assert str(ticket.public_id) in listing and "Confirmed, waiting for review" in listing


def test_double_submit_is_idempotent(client_for, forget_subject, django_capture_on_commit_callbacks):
    client = client_for("owner")
    data = {"subject_name": forget_subject.display_name, "scope": "all", "jurisdiction": "GDPR",
            "idempotency_key": "k" * 32}
    with django_capture_on_commit_callbacks(execute=True):
        a = client.post("/requests/new/", data)
        b = client.post("/requests/new/", data)
    assert a["Location"] == b["Location"]
    assert RemovalTicket.objects.count() == 1


def test_resend_code(client_for, forget_subject, file_request, django_capture_on_commit_callbacks):
    ticket = file_request(forget_subject)
    first_hash = RemovalTicket.objects.get(pk=ticket.pk).identity_code_sha256
    with django_capture_on_commit_callbacks(execute=True):
        r = client_for("owner").post(f"/requests/{ticket.public_id}/resend-code/")
    assert r.status_code == 302 and len(mail.outbox) == 2
    assert RemovalTicket.objects.get(pk=ticket.pk).identity_code_sha256 != first_hash
    r = client_for("owner").post(f"/requests/{ticket.public_id}/verify/", {"code": code_from_outbox()})
    assert r.status_code == 302


def test_withdraw(client_for, forget_subject, file_request):
    ticket = file_request(forget_subject)
    client = client_for("owner")
    assert "Withdraw this request" in client.get(f"/requests/{ticket.public_id}/").content.decode()
    assert client.get(f"/requests/{ticket.public_id}/withdraw/").status_code == 200
    r = client.post(f"/requests/{ticket.public_id}/withdraw/")
    assert r.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "withdrawn"
    page = client.get(f"/requests/{ticket.public_id}/").content.decode()
    assert "Withdraw this request" not in page and "Request withdrawn" in page


# --- isolation and permissions --------------------------------------------------------------------

def test_owner_cannot_see_another_owners_request(client_for, forget_subject, file_request):
    ticket = file_request(forget_subject)
    other = client_for("other_owner")
    for suffix in ("", "verify/", "withdraw/", "certificate/", "certificate.json"):
        assert other.get(f"/requests/{ticket.public_id}/{suffix}").status_code == 404, suffix
    assert other.post(f"/requests/{ticket.public_id}/withdraw/").status_code == 404
    assert other.post(f"/requests/{ticket.public_id}/verify/", {"code": code_from_outbox()}).status_code == 404
    assert other.post(f"/requests/{ticket.public_id}/resend-code/").status_code == 404
    assert str(ticket.public_id) not in other.get("/requests/").content.decode()
    ticket.refresh_from_db()
    assert ticket.status == "submitted"


@pytest.mark.parametrize("url", ["/dashboard/", "/dashboard/models/"])
def test_dashboard_is_staff_only(client_for, url):
    r = client_for(None).get(url)
    assert r.status_code == 302 and r["Location"].startswith(f"/signin/?next={url}")
    assert client_for("owner").get(url).status_code == 403
    for role in ("reviewer", "approver", "operator", "auditor"):
        assert client_for(role).get(url).status_code == 200, role


def test_dashboard_request_actions_need_the_right_role(client_for, forget_subject, file_request):
    ticket = file_request(forget_subject)
    base = f"/dashboard/requests/{ticket.public_id}/"
    assert client_for("owner").get(base).status_code == 403
    assert client_for("owner").post(base + "review/").status_code == 403
    assert client_for("auditor").post(base + "review/").status_code == 403
    assert client_for("reviewer").post(base + "deny/", {"exception_code": "art17_3_e", "reason": "x"}).status_code == 403
    assert client_for("operator").post(base + "approve/", {"method": "dp2"}).status_code == 403
    ticket.refresh_from_db()
    assert ticket.status == "submitted"


def test_csrf_is_enforced_on_every_form(client_for, forget_subject, file_request, users):
    ticket = file_request(forget_subject)
    anon = Client(enforce_csrf_checks=True)
    assert anon.post("/signin/", {"email": "x@example.org"}).status_code == 403
    assert anon.post("/certificates/check/", {"document": "{}"}).status_code == 403
    owner = Client(enforce_csrf_checks=True)
    owner.force_login(users["owner"])
    assert owner.post("/requests/new/", {"subject_name": forget_subject.display_name, "scope": "all",
                                         "jurisdiction": "GDPR"}).status_code == 403
    assert owner.post(f"/requests/{ticket.public_id}/verify/", {"code": code_from_outbox()}).status_code == 403
    assert owner.post(f"/requests/{ticket.public_id}/withdraw/").status_code == 403
    assert owner.post("/signout/").status_code == 403
    reviewer = Client(enforce_csrf_checks=True)
    reviewer.force_login(users["approver"])
    assert reviewer.post(f"/dashboard/requests/{ticket.public_id}/deny/",
                         {"exception_code": "art17_3_e", "reason": "x"}).status_code == 403
    ticket.refresh_from_db()
    assert ticket.status == "submitted" and not mail.outbox[1:]
    # with the token from the page, the same POST works
    page = owner.get(f"/requests/{ticket.public_id}/withdraw/")
    token = page.context["csrf_token"]
    assert owner.post(f"/requests/{ticket.public_id}/withdraw/", {"csrfmiddlewaretoken": str(token)}).status_code == 302


# --- reviewer dashboard ------------------------------------------------------------------------------

def test_queue_sorted_by_deadline_with_highlights(client_for, forget_subject, file_request):
    from datetime import timedelta

    from django.utils import timezone

    a = file_request(forget_subject)
    b = file_request(forget_subject)
    c = file_request(forget_subject)
    now = timezone.now()
    RemovalTicket.objects.filter(pk=a.pk).update(due_at=now + timedelta(days=20))
    RemovalTicket.objects.filter(pk=b.pk).update(due_at=now - timedelta(days=1))
    RemovalTicket.objects.filter(pk=c.pk).update(due_at=now + timedelta(days=3))
    body = client_for("reviewer").get("/dashboard/").content.decode()
    pos = [body.index(f"/dashboard/requests/{t.public_id}/") for t in (b, c, a)]
    assert pos == sorted(pos)
    assert 'class="deadline-overdue"' in body and 'class="deadline-due_soon"' in body
    assert "1 overdue, 1 due within 7 days" in body


def test_review_then_deny_with_exception_code(client_for, forget_subject, file_request):
    ticket = file_request(forget_subject)
    client_for("owner").post(f"/requests/{ticket.public_id}/verify/", {"code": code_from_outbox()})
    base = f"/dashboard/requests/{ticket.public_id}/"
    assert client_for("reviewer").post(base + "review/").status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "in_review"
    approver = client_for("approver")
    r = approver.post(base + "deny/", {"exception_code": "", "reason": ""})
    assert r.status_code == 400 and 'href="#id_exception_code"' in r.content.decode()
    r = approver.post(base + "deny/", {"exception_code": "art17_3_e", "reason": "Needed for a pending lawsuit."})
    assert r.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "denied" and ticket.exception_code == "art17_3_e"
    page = client_for("owner").get(f"/requests/{ticket.public_id}/").content.decode()
    assert "Needed for a pending lawsuit." in page and "Request declined" in page and "(our team)" in page


def test_approve_needs_records(client_for, forget_subject, target_model, file_request):
    ticket = file_request(forget_subject)
    client_for("owner").post(f"/requests/{ticket.public_id}/verify/", {"code": code_from_outbox()})
    base = f"/dashboard/requests/{ticket.public_id}/"
    client_for("reviewer").post(base + "review/")
    page = client_for("approver").get(base).content.decode()
    assert page.count('type="checkbox" name="records"') == 20 and "checked" in page
    assert re.search(r'<input type="radio" name="method" value="dp2"[^>]* checked>', page)  # radio list (issue 21 item 6)
    r = client_for("approver").post(base + "approve/", {"method": "dp2"})
    assert r.status_code == 400 and "Confirm at least one record" in r.content.decode()
    r = client_for("approver").post(base + "approve/", {"method": "dp2", "records": [1], "hyperparameters": "[1]"})
    assert r.status_code == 400 and "JSON object" in r.content.decode()
    ticket.refresh_from_db()
    assert ticket.status == "in_review"


# --- certificates -----------------------------------------------------------------------------------

@pytest.fixture
def signed_document(settings, tmp_path):
    from evaluation.certificate import sign_certificate
    from requests_app.certificates import signing_key

    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"
    payload = {"certificate_id": "c-1", "issued_at": "2026-01-01T00:00:00+00:00", "issuer": "Test",
               "model": {"name": "tiny"}, "job": {"method": "dp2"}, "forget_set": {"count": 20, "sha256": "ab" * 32},
               "tickets": [{"id": "t-1", "jurisdiction": "GDPR", "legal_ground": "art17_1_b", "deadline_met": True}],
               "verdicts": {"passed": True, "checks": [{"name": "privleak", "value": 1.5, "threshold": 5,
                                                        "comparison": "abs<=", "passed": True, "status": "pass"}]},
               "limitations": ["Only Min-K% was run."]}
    return sign_certificate(payload, signing_key())


def test_certificate_check_page(db, signed_document):
    client = Client()
    assert client.get("/certificates/check/").status_code == 200
    r = client.post("/certificates/check/", {"document": json.dumps(signed_document)})
    body = r.content.decode()
    assert "Valid certificate" in body and "tiny" in body and "Only Min-K% was run." in body
    tampered = json.loads(json.dumps(signed_document))
    tampered["payload"]["forget_set"]["count"] = 21
    upload = SimpleUploadedFile("c.json", json.dumps(tampered).encode(), content_type="application/json")
    body = client.post("/certificates/check/", {"upload": upload}).content.decode()
    assert "Invalid certificate" in body and "bad signature" in body and "not confirmed" in body
    body = client.post("/certificates/check/", {"document": "not json {"}).content.decode()
    assert "Invalid certificate" in body and "not valid JSON" in body
    body = client.post("/certificates/check/", {"document": "   "}).content.decode()
    assert "Paste the certificate or choose a file" in body and "error-summary" in body


def test_certificate_check_upload_limit(db, settings):
    settings.EVIDENCE_MAX_BYTES = 50
    upload = SimpleUploadedFile("c.json", b"{" + b" " * 100 + b"}", content_type="application/json")
    body = Client().post("/certificates/check/", {"upload": upload}).content.decode()
    assert "files may be at most 50" in body


# --- model lineage ----------------------------------------------------------------------------------

def test_model_lineage_page_and_plot(client_for, target_model):
    client = client_for("operator")
    page = client.get(f"/dashboard/models/{target_model.pk}/").content.decode()
    assert "v0" in page and "serving" in page and "sustainability.png" in page
    assert "epsilon" in page  # the DP ledger
    r = client.get(f"/dashboard/models/{target_model.pk}/sustainability.png")
    assert r.status_code == 200 and r["Content-Type"] == "image/png" and r.content[:4] == b"\x89PNG"
    assert client_for("owner").get(f"/dashboard/models/{target_model.pk}/sustainability.png").status_code == 403


def test_certificate_download_and_page_for_the_owner_only(client_for, certified_lineage):
    ticket = certified_lineage["ticket"]
    owner = client_for("owner")
    detail = owner.get(f"/requests/{ticket.public_id}/").content.decode()
    assert "Done: data removed, certificate issued" in detail and "certificate.json" in detail
    r = owner.get(f"/requests/{ticket.public_id}/certificate.json")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/json")
    assert r["Content-Disposition"].startswith("attachment;")
    document = json.loads(r.content)
    assert set(document) == {"payload", "signature", "key_id", "algorithm"}
    page = owner.get(f"/requests/{ticket.public_id}/certificate/").content.decode()
    assert "Genuine: the signature is valid." in page and "demo-llama" in page
    other = client_for("other_owner")
    assert other.get(f"/requests/{ticket.public_id}/certificate.json").status_code == 404
    assert other.get(f"/requests/{ticket.public_id}/certificate/").status_code == 404
    cert_id = document["payload"]["certificate_id"]
    assert owner.get(f"/dashboard/certificates/{cert_id}/").status_code == 403
    assert client_for("auditor").get(f"/dashboard/certificates/{cert_id}.json").status_code == 200
    # the downloaded file checks as valid on the public page
    body = Client().post("/certificates/check/", {"document": r.content.decode()}).content.decode()
    assert "Valid certificate" in body


def test_lineage_points_and_job_progress_json(client_for, certified_lineage):
    from requests_app.portal.lineage import lineage_points

    points = lineage_points(certified_lineage["model"])
    assert [p["sequence"] for p in points] == [0, 1, 2]
    assert [p["utility"] for p in points] == [62.0, 60.5, 59.8]
    assert [round(p["privleak"], 1) for p in points] == [-76.0, -2.0, 2.0]
    page = client_for("auditor").get(f"/dashboard/models/{certified_lineage['model'].pk}/").content.decode()
    # ε to 2 decimals, utility with KnowMem's precision (1 decimal, ROUGE-L ×100), issue 21 item 4
    assert "v2" in page and ">158.00<" in page and ">59.8<" in page
    job = certified_lineage["versions"][2].produced_by
    r = client_for("operator").get(f"/dashboard/jobs/{job.public_id}/progress.json")
    assert r.status_code == 200
    data = r.json()
    assert data["final"] is True and data["progress"]["step"] == 40 and data["status"] == "succeeded"
    assert client_for("owner").get(f"/dashboard/jobs/{job.public_id}/progress.json").status_code == 403
    assert client_for(None).get(f"/dashboard/jobs/{job.public_id}/progress.json").status_code == 302
