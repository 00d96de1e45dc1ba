"""The owner's status stepper (issue 21 item 15): done steps with their time, the current step
with what happens now, the answer deadline on the last step, nothing promised once it ended."""
from __future__ import annotations

import pytest

from requests_app import services
from requests_app.models import RemovalTicket, TicketStatus
from requests_app.portal.presentation import ticket_timeline
from requests_app.portal.stepper import ticket_steps

pytestmark = pytest.mark.django_db


def _steps(ticket, user):
    ticket.refresh_from_db()
    result = ticket_steps(ticket, ticket_timeline(ticket, viewer=user, staff=False))
    return result, [(s["key"], s["state"]) for s in result["steps"]]


def test_new_request_waits_for_the_code(users, forget_subject):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    result, states = _steps(ticket, users["owner"])
    assert states == [("received", "done"), ("identity", "current"), ("review", "upcoming"),
                      ("removal", "upcoming"), ("checks", "upcoming"), ("certificate", "upcoming")]
    assert result["steps"][0]["when"] is not None and result["steps"][1]["note"].startswith("Type in the 6-digit code")
    assert result["due_at"] == ticket.due_at


def test_declined_request_ends_without_a_deadline(users, forget_subject):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.IDENTITY_VERIFIED)
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    services.ticket_deny(ticket=ticket, actor=users["approver"], exception_code="art17_3_e", reason="claims")
    result, states = _steps(ticket, users["owner"])
    assert [s for _k, s in states] == ["done", "done", "done", "skipped", "skipped", "skipped"]
    assert result["ended"] == "denied" and result["due_at"] is None


def test_certified_request_is_done(users, certified_lineage):
    ticket = certified_lineage["ticket"]
    result, states = _steps(ticket, users["owner"])
    assert [s for _k, s in states] == ["done"] * 6 and result["due_at"] is None


def test_stepper_on_the_request_page(client_for, users, forget_subject):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    page = client_for("owner").get(f"/requests/{ticket.public_id}/").content.decode()
    assert page.count('class="step step-') == 6
    assert '<li class="step step-current" data-step="identity" data-state="current" aria-current="step">' in page
    assert "We answer by" in page.split('class="stepper"')[1].split("</ol>")[0]
