"""Issue 21 item 16: the reviewer queue's filters, search, assignee and bulk assign / hold
(services with their audit events; the page through the Django test client)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from requests_app import services
from requests_app.models import AuditEvent, RemovalTicket, TicketStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def tickets(users, forget_subject, corpus):
    now = timezone.now()
    a, _ = services.ticket_create(requester=users["owner"], subject=forget_subject, jurisdiction="GDPR")
    b, _ = services.ticket_create(requester=users["other_owner"], subject=forget_subject, jurisdiction="CCPA")
    c, _ = services.ticket_create(requester=users["owner"], subject=None, subject_name_given="Zebedee Quillfeather",
                                  jurisdiction="CCPA")
    RemovalTicket.objects.filter(pk=a.pk).update(due_at=now - timedelta(days=1))  # overdue
    RemovalTicket.objects.filter(pk=b.pk).update(due_at=now + timedelta(days=3), status=TicketStatus.RUNNING)
    return {"a": a, "b": b, "c": c}


def _shown(client, **params) -> set[str]:
    import re

    body = client.get("/dashboard/", params).content.decode()
    return set(re.findall(r'<tr class="deadline-\w+" data-ticket="([0-9a-f-]+)"', body))


def test_filters_and_search(client_for, tickets, users):
    ids = {k: str(t.public_id) for k, t in tickets.items()}
    c = client_for("reviewer")
    assert _shown(c) == set(ids.values())
    assert _shown(c, jurisdiction="CCPA") == {ids["b"], ids["c"]}
    assert _shown(c, status="running") == {ids["b"]}
    assert _shown(c, due="overdue") == {ids["a"]}
    assert _shown(c, due="soon") == {ids["b"]}
    assert _shown(c, due="later") == {ids["c"]}
    assert _shown(c, q="quillfeather") == {ids["c"]}  # the name given for a request naming nobody found
    assert _shown(c, q="other@example") == {ids["b"]}  # the requester's e-mail
    assert _shown(c, q=tickets["a"].subject.display_name.upper()) == {ids["a"], ids["b"]}
    assert _shown(c, status="nonsense") == set(ids.values())  # an invalid filter is ignored
    assert _shown(c, assignee="none") == set(ids.values())
    services.ticket_assign(ticket=tickets["a"], actor=users["approver"], assignee=users["reviewer"])
    assert _shown(c, assignee="me") == {ids["a"]}
    assert _shown(c, assignee=str(users["reviewer"].pk)) == {ids["a"]}
    RemovalTicket.objects.filter(pk=tickets["c"].pk).update(status=TicketStatus.NO_DATA)
    assert ids["c"] not in _shown(c) and ids["c"] in _shown(c, closed="on")


def test_assign_audited_and_checked(tickets, users):
    t = services.ticket_assign(ticket=tickets["a"], actor=users["approver"], assignee=users["reviewer"])
    assert t.assignee == users["reviewer"]
    services.ticket_assign(ticket=t, actor=users["approver"], assignee=None)
    events = AuditEvent.objects.filter(verb="ticket.assigned", object_id=str(t.public_id)).order_by("id")
    assert [(e.before, e.after) for e in events] == [
        ({"assignee": None}, {"assignee": "reviewer"}), ({"assignee": "reviewer"}, {"assignee": None})]
    with pytest.raises(services.ServiceError, match="not in the legal team"):
        services.ticket_assign(ticket=t, actor=users["approver"], assignee=users["operator"])


def test_bulk_hold_reports_the_refused(tickets, users):
    result = services.tickets_bulk_hold(tickets=list(tickets.values()), actor=users["reviewer"], reason="Litigation.")
    assert {t.pk for t in result.done} == {tickets["a"].pk, tickets["c"].pk}
    assert [(t.pk, why) for t, why in result.refused] == [(tickets["b"].pk, "cannot be held while 'running'")]
    assert AuditEvent.objects.filter(verb="ticket.on_hold").count() == 2
    with pytest.raises(services.ServiceError):
        services.tickets_bulk_hold(tickets=[tickets["a"]], actor=users["reviewer"], reason=" ")


def test_bulk_form(client_for, tickets, users):
    ids = [str(tickets["a"].public_id), str(tickets["c"].public_id)]
    c = client_for("reviewer")
    r = c.post("/dashboard/bulk/", {"action": "assign", "tickets": ids, "assignee": str(users["approver"].pk),
                                    "next": "/dashboard/?jurisdiction=GDPR"})
    assert r.status_code == 302 and r["Location"] == "/dashboard/?jurisdiction=GDPR"
    assert set(RemovalTicket.objects.filter(assignee=users["approver"]).values_list("pk", flat=True)) == {
        tickets["a"].pk, tickets["c"].pk}
    r = c.post("/dashboard/bulk/", {"action": "hold", "tickets": ids, "reason": "", "next": "https://evil.example/"})
    assert r["Location"] == "/dashboard/"
    assert not RemovalTicket.objects.filter(status=TicketStatus.ON_HOLD).exists()
    r = c.post("/dashboard/bulk/", {"action": "hold", "tickets": ids + [str(tickets["b"].public_id)],
                                    "reason": "Litigation."}, follow=True)
    body = r.content.decode()
    assert "2 requests put on legal hold." in body and "cannot be held while &#x27;running&#x27;" in body
    assert client_for("auditor").post("/dashboard/bulk/", {"action": "hold"}).status_code == 403
    assert 'id="bulk-form"' not in client_for("auditor").get("/dashboard/").content.decode()
    assert 'id="bulk-form"' in c.get("/dashboard/").content.decode()
