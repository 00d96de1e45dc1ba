"""Issue 21 item 3: a request naming someone the service cannot find is filed (the deadline runs),
and a reviewer answers "no data held" (own notice + audit event, one transaction) or links the
person by hand. Service, API, portal and dashboard."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from requests_app import services
from requests_app.models import AuditEvent, OwnerNotice, RemovalTicket, TicketStatus
from requests_app.workflow import TransitionError

pytestmark = pytest.mark.django_db

NOBODY = "Zebedee Quillfeather"


@pytest.fixture
def unmatched(users, corpus, settings):
    settings.PORTAL_BASE_URL = "https://privacy.example.com"
    ticket, _ = services.ticket_create(requester=users["owner"], subject=None, subject_name_given=NOBODY,
                                       jurisdiction="GDPR")
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.IDENTITY_VERIFIED,
                                                      identity_verified_at=ticket.received_at)
    ticket.refresh_from_db()
    return ticket


def test_filed_with_the_name_given_and_a_running_deadline(unmatched):
    assert unmatched.subject is None and unmatched.subject_name_given == NOBODY
    assert unmatched.subject_label == NOBODY
    month = unmatched.due_at - unmatched.received_at
    assert timedelta(days=28) <= month <= timedelta(days=31)  # GDPR Art. 12(3): one month from receipt
    event = AuditEvent.objects.get(verb="ticket.submitted", object_id=str(unmatched.public_id))
    assert event.after["subject"] is None and event.after["subject_found"] is False


def test_no_data_answer_has_its_notice_and_audit_event(unmatched, users, django_capture_on_commit_callbacks):
    services.ticket_start_review(ticket=unmatched, reviewer=users["reviewer"])
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        t = services.ticket_confirm_no_data(ticket=unmatched, actor=users["reviewer"],
                                            note="We searched for Z. Quillfeather too.")
    assert t.status == TicketStatus.NO_DATA and t.decision == "no_data"
    event = AuditEvent.objects.get(verb="ticket.no_data_held", object_id=str(t.public_id))
    assert event.before == {"status": "in_review"}
    assert event.after["status"] == "no_data" and event.after["records_found"] == 0
    notice = OwnerNotice.objects.get(ticket=t, kind="no_data")
    assert notice.status == OwnerNotice.Status.SENT
    [m] = mail.outbox
    assert m.subject == "Your data-removal request: we hold no data about this person"
    assert NOBODY in m.body and "We searched for Z. Quillfeather too." in m.body
    assert f"https://privacy.example.com/requests/{t.public_id}/" in m.body
    assert NOBODY in m.alternatives[0][0]


def test_no_data_rolls_back_with_its_transaction(unmatched, users):
    from django.db import transaction

    services.ticket_start_review(ticket=unmatched, reviewer=users["reviewer"])
    with pytest.raises(RuntimeError), transaction.atomic():
        services.ticket_confirm_no_data(ticket=unmatched, actor=users["reviewer"])
        raise RuntimeError("rolled back")
    unmatched.refresh_from_db()
    assert unmatched.status == TicketStatus.IN_REVIEW
    assert not OwnerNotice.objects.filter(kind="no_data").exists()
    assert not AuditEvent.objects.filter(verb="ticket.no_data_held").exists()


def test_no_data_refused_when_records_match_and_outside_review(users, forget_subject, unmatched):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.IN_REVIEW, reviewed_by=users["reviewer"])
    with pytest.raises(services.ServiceError, match="training record"):
        services.ticket_confirm_no_data(ticket=ticket, actor=users["reviewer"])
    with pytest.raises(TransitionError):  # still identity_verified: review first
        services.ticket_confirm_no_data(ticket=unmatched, actor=users["reviewer"])


def test_resolved_by_hand_then_approvable(unmatched, users, forget_subject):
    services.ticket_start_review(ticket=unmatched, reviewer=users["reviewer"])
    with pytest.raises(services.ServiceError, match="link the data subject"):
        services.ticket_approve(ticket=unmatched, approver=users["approver"])
    t = services.ticket_subject_resolve(ticket=unmatched, actor=users["reviewer"], subject=forget_subject)
    assert t.subject == forget_subject and t.status == TicketStatus.IN_REVIEW
    event = AuditEvent.objects.get(verb="ticket.subject_resolved")
    assert event.before == {"subject": None, "subject_name_given": NOBODY}
    assert event.after == {"subject": str(forget_subject.public_id)}
    with pytest.raises(services.ServiceError, match="already names"):
        services.ticket_subject_resolve(ticket=t, actor=users["reviewer"], subject=forget_subject)


def test_ccpa_report_counts_the_no_data_answer(unmatched, users):
    from django.utils import timezone

    from requests_app.selectors import ccpa_metrics

    services.ticket_start_review(ticket=unmatched, reviewer=users["reviewer"])
    services.ticket_confirm_no_data(ticket=unmatched, actor=users["reviewer"])
    now = timezone.now()
    report = ccpa_metrics(start=now - timedelta(days=1), end=now + timedelta(days=1))
    assert report["received"] == 1 and report["no_data_held"] == 1 and report["open"] == 0
    assert report["median_days_to_respond"] == 0.0


def test_api_files_an_unknown_name_and_answers_no_data(api, corpus, users):
    r = api("owner").post("/api/v1/tickets/", {"subject_name": NOBODY, "jurisdiction": "CCPA"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["subject"] == {"id": None, "display_name": NOBODY, "found": False}
    ticket = RemovalTicket.objects.get(public_id=r.json()["id"])
    assert (ticket.due_at - ticket.received_at) == timedelta(days=45)
    r = api("owner").post("/api/v1/tickets/", {"subject_id": "00000000-0000-0000-0000-000000000000"}, format="json")
    assert r.status_code == 400 and "unknown data subject" in r.json()["detail"]
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.IN_REVIEW, reviewed_by=users["reviewer"])
    assert api("owner").post(f"/api/v1/tickets/{ticket.public_id}/no-data/", {}, format="json").status_code == 403
    r = api("reviewer").post(f"/api/v1/tickets/{ticket.public_id}/no-data/", {"note": "none"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "no_data"
    r = api("reviewer").post(f"/api/v1/tickets/{ticket.public_id}/no-data/", {}, format="json")
    assert r.status_code == 409 and r.json()["current_status"] == "no_data"


def test_api_link_subject(api, corpus, users, forget_subject):
    r = api("owner").post("/api/v1/tickets/", {"subject_name": NOBODY}, format="json")
    pid = r.json()["id"]
    r = api("reviewer").post(f"/api/v1/tickets/{pid}/link-subject/", {"subject_name": "nobody at all"}, format="json")
    assert r.status_code == 400
    r = api("reviewer").post(f"/api/v1/tickets/{pid}/link-subject/", {"subject_id": str(forget_subject.public_id)},
                             format="json")
    assert r.status_code == 200 and r.json()["subject"]["found"] is True


def test_portal_files_the_unknown_name(client_for, corpus, django_capture_on_commit_callbacks):
    data = {"subject_name": NOBODY, "scope": "all", "jurisdiction": "GDPR", "legal_ground": ""}
    with django_capture_on_commit_callbacks(execute=True):
        r = client_for("owner").post("/requests/new/", data, follow=True)
    assert r.status_code == 200
    ticket = RemovalTicket.objects.get()
    assert ticket.subject is None and ticket.subject_name_given == NOBODY
    assert "search by hand" in r.content.decode()


def test_dashboard_link_and_no_data(client_for, unmatched, users, forget_subject, django_capture_on_commit_callbacks):
    services.ticket_start_review(ticket=unmatched, reviewer=users["reviewer"])
    reviewer = client_for("reviewer")
    page = reviewer.get(f"/dashboard/requests/{unmatched.public_id}/").content.decode()
    assert 'id="subject-not-found"' in page and 'id="confirm-no-data"' in page and 'id="approve"' not in page
    auditor_page = client_for("auditor").get(f"/dashboard/requests/{unmatched.public_id}/").content.decode()
    assert 'id="confirm-no-data"' not in auditor_page
    assert client_for("auditor").post(f"/dashboard/requests/{unmatched.public_id}/no-data/").status_code == 403
    r = reviewer.post(f"/dashboard/requests/{unmatched.public_id}/link-subject/", {"subject": "no such person"})
    assert r.status_code == 400 and "unknown data subject" in r.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        r = reviewer.post(f"/dashboard/requests/{unmatched.public_id}/no-data/", {"note": "Searched aliases."})
    assert r.status_code == 302
    unmatched.refresh_from_db()
    assert unmatched.status == "no_data" and unmatched.decision_reason == "Searched aliases."
    owner_page = client_for("owner").get(f"/requests/{unmatched.public_id}/").content.decode()
    assert "We hold no data about this person" in owner_page and "We answer by" not in owner_page


def test_resolution_of_an_unmatched_request_is_content_matches_only(api, unmatched, users, target_model):
    """Records without a subject link must not count as "linked" to a request naming nobody found."""
    from requests_app.models import TrainingRecord

    record = TrainingRecord.objects.filter(corpus=target_model.corpus, split="train").first()
    TrainingRecord.objects.filter(pk=record.pk).update(subject=None, answer=record.answer + f" ({NOBODY})")
    RemovalTicket.objects.filter(pk=unmatched.pk).update(status=TicketStatus.IN_REVIEW, reviewed_by=users["reviewer"],
                                                        target_model=target_model)
    rows = api("reviewer").get(f"/api/v1/tickets/{unmatched.public_id}/resolution/").json()
    assert [(r["id"], r["provenance"]) for r in rows] == [(record.pk, "content match")]
    from requests_app.services.approval import resolution_split

    unmatched.refresh_from_db()
    assert resolution_split(ticket=unmatched, model=target_model) == (set(), {record.pk})
