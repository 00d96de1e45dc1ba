"""Issue 13 items 7 and 8: hyper-parameter and received_at bounds; Django admin cannot change workflow state."""
import datetime as dt
import re

import pytest
from django.core import mail
from django.utils import timezone

from requests_app import services
from requests_app.models import AuditEvent, Certificate, RemovalTicket, TicketStatus, UnlearningJob


def _in_review(users, subject, capture):
    with capture(execute=True):
        ticket, _ = services.ticket_create(requester=users["owner"], subject=subject)
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    return services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])


@pytest.mark.parametrize("hp, word", [
    ({"epochs": 1e9}, "epochs"), ({"lr": 1e300}, "lr"), ({"epochs": -1}, "epochs"),
    ({"batch_size": 1e9}, "batch_size"), ({"lr": 0}, "lr"), ({"beta": 1e6}, "beta"),
    ({"epochs": 2.5}, "epochs"), ({"lr": "fast"}, "lr"), ({"nope": 1}, "unknown"),
])
def test_out_of_range_hyperparameters_are_400_at_approval(api, users, forget_subject, target_model, hp, word,
                                                          django_capture_on_commit_callbacks):
    ticket = _in_review(users, forget_subject, django_capture_on_commit_callbacks)
    method = "npo_gd" if "beta" in hp else "dp2"
    r = api("approver").post(f"/api/v1/tickets/{ticket.public_id}/approve/",
                             {"method": method, "hyperparameters": hp}, format="json")
    assert r.status_code == 400, r.content
    assert word in r.json()["detail"]
    assert RemovalTicket.objects.get(pk=ticket.pk).status == TicketStatus.IN_REVIEW
    assert UnlearningJob.objects.count() == 0


def test_in_range_hyperparameters_are_accepted(users, forget_subject, target_model,
                                               django_capture_on_commit_callbacks):
    ticket = _in_review(users, forget_subject, django_capture_on_commit_callbacks)
    job = services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2",
                                  hyperparameters={"epochs": 1000, "lr": 1.0, "batch_size": 4096})
    assert job.hyperparameters == {"epochs": 1000, "lr": 1.0, "batch_size": 4096}


def test_engine_bounds_refuse_non_finite_and_huge_values():
    from unlearning_engine import get_method
    from unlearning_engine.errors import UnlearningInputError

    for bad in ({"epochs": 1001}, {"lr": float("nan")}, {"lr": float("inf")}, {"batch_size": 4097}):
        with pytest.raises(UnlearningInputError, match="outside the allowed range|finite"):
            get_method("dp2").resolve_hyperparameters(bad)


@pytest.mark.parametrize("offset, ok", [
    (dt.timedelta(days=-10), True), (dt.timedelta(minutes=4), True), (dt.timedelta(days=-364), True),
    (dt.timedelta(minutes=10), False), (dt.timedelta(days=365 * 3), False), (dt.timedelta(days=-366), False),
])
def test_received_at_window(api, forget_subject, offset, ok):
    when = (timezone.now() + offset).isoformat()
    r = api("reviewer").post("/api/v1/tickets/", {"subject_name": forget_subject.display_name, "received_at": when},
                             format="json")
    if ok:
        assert r.status_code == 201, r.content
        event = AuditEvent.objects.filter(verb="ticket.submitted").last()
        assert event.after["received_at_given"] is True
        assert event.after["received_at"] == RemovalTicket.objects.get().received_at.isoformat()
    else:
        assert r.status_code == 400 and "received_at" in r.json()["detail"]
        assert RemovalTicket.objects.count() == 0


def test_received_at_default_is_audited_as_not_given(users, forget_subject):
    services.ticket_create(requester=users["owner"], subject=forget_subject)
    assert AuditEvent.objects.filter(verb="ticket.submitted").last().after["received_at_given"] is False


# --- item 8: admin ---------------------------------------------------------------------------

@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "pw-long-enough-1")
    client.force_login(admin)
    return client


def test_admin_cannot_change_ticket_status_or_certify(admin_client_logged_in, users, forget_subject):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    url = f"/admin/requests_app/removalticket/{ticket.pk}/change/"
    assert admin_client_logged_in.get(url).status_code == 200  # view only
    events = AuditEvent.objects.count()
    r = admin_client_logged_in.post(url, {"status": "certified", "decision": "approved"})
    assert r.status_code == 403
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.SUBMITTED and ticket.decision == ""
    assert AuditEvent.objects.count() == events
    for model in ("removalticket", "unlearningjob", "certificate", "modelversion", "evaluationreport",
                  "targetmodel", "auditevent"):
        assert admin_client_logged_in.get(f"/admin/requests_app/{model}/add/").status_code == 403, model
    r = admin_client_logged_in.post(f"/admin/requests_app/removalticket/{ticket.pk}/delete/", {"post": "yes"})
    assert r.status_code == 403 and RemovalTicket.objects.filter(pk=ticket.pk).exists()
    assert Certificate.objects.count() == 0


def test_admin_change_list_has_no_bulk_delete(admin_client_logged_in, users, forget_subject):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    r = admin_client_logged_in.post("/admin/requests_app/removalticket/",
                                    {"action": "delete_selected", "_selected_action": [ticket.pk], "post": "yes"})
    assert RemovalTicket.objects.filter(pk=ticket.pk).exists()
    assert r.status_code in (200, 302, 403)
