"""Outcome e-mails to the data owner (issue 21 item 2): one per outcome, plain text + HTML, a link
to the request, sent only after the change commits, retried by the e-mail task, listed on the page."""
from __future__ import annotations

import pytest
from django.core import mail
from django.db import transaction

from requests_app import services
from requests_app.models import OwnerNotice, RemovalTicket, TicketStatus, UnlearningJob
from requests_app.services.common import _ticket_transition

pytestmark = pytest.mark.django_db


@pytest.fixture
def ticket(users, forget_subject, settings):
    settings.PORTAL_BASE_URL = "https://privacy.example.com"
    settings.PRIVACY_APPEAL_CONTACT = "appeals@example.com"
    t, _ = services.ticket_create(requester=users["owner"], subject=forget_subject, jurisdiction="CCPA")
    RemovalTicket.objects.filter(pk=t.pk).update(status=TicketStatus.IDENTITY_VERIFIED)
    t.refresh_from_db()
    mail.outbox.clear()
    return t


def _only_mail():
    assert len(mail.outbox) == 1, [m.subject for m in mail.outbox]
    m = mail.outbox.pop()
    assert m.to == ["owner@example.org"]
    html, mimetype = m.alternatives[0]
    assert mimetype == "text/html" and "<html" in html
    return m, html


def _run(django_capture_on_commit_callbacks, fn):
    """Run a service; nothing is e-mailed before its transaction's on-commit callbacks run."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = fn()
    assert mail.outbox == []  # not before commit
    for callback in callbacks:
        callback()
    return result


def test_review_notice(ticket, users, django_capture_on_commit_callbacks):
    _run(django_capture_on_commit_callbacks, lambda: services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"]))
    m, html = _only_mail()
    assert m.subject == "Your data-removal request is being reviewed"
    url = f"https://privacy.example.com/requests/{ticket.public_id}/"
    assert f"Your request: {url}" in m.body and f'href="{url}"' in html
    assert f"We answer by {ticket.due_at.day} {ticket.due_at:%B %Y, %H:%M} UTC" in m.body
    assert "CCPA (California)" in m.body


def test_extension_notice_has_the_new_deadline_and_reason(ticket, users, django_capture_on_commit_callbacks):
    t = _run(django_capture_on_commit_callbacks, lambda: services.ticket_extend_deadline(
        ticket=ticket, actor=users["reviewer"], reason="Many texts to check."))
    m, html = _only_mail()
    assert m.subject == "Your data-removal request: we need more time"
    assert "Reason: Many texts to check." in m.body and f"{t.due_at:%B %Y}" in m.body and "Many texts to check." in html


def test_denial_notice_states_the_exception_and_how_to_appeal(ticket, users, django_capture_on_commit_callbacks):
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    mail.outbox.clear()
    _run(django_capture_on_commit_callbacks, lambda: services.ticket_deny(
        ticket=ticket, actor=users["approver"], exception_code="ccpa_105_d_8", reason="A court order requires it."))
    m, html = _only_mail()
    assert m.subject == "Your data-removal request was declined"
    assert "Legal ground: CCPA §1798.105(d)(8): a legal obligation" in m.body
    assert "Our reason: A court order requires it." in m.body
    assert "appeals@example.com" in m.body and "California Privacy Protection Agency" in html


def test_withdrawal_notice(ticket, users, django_capture_on_commit_callbacks):
    _run(django_capture_on_commit_callbacks, lambda: services.ticket_withdraw(ticket=ticket, actor=users["owner"]))
    m, _html = _only_mail()
    assert m.subject == "Your data-removal request was withdrawn" and "stopped working on it" in m.body


def _queued_job(ticket, certified_lineage):
    model = certified_lineage["model"]
    job = UnlearningJob.objects.create(model=model, source_version=certified_lineage["versions"][-1], method="dp2",
                                       forget_set_sha256="a" * 64, forget_count=20)
    job.tickets.add(ticket)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.QUEUED, resolved_record_ids=list(range(20)))
    ticket.refresh_from_db()
    return job


def test_approval_notice(ticket, users, django_capture_on_commit_callbacks):
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.IN_REVIEW, resolved_record_ids=[1, 2, 3])
    ticket.refresh_from_db()

    def approve():
        with transaction.atomic():
            _ticket_transition(ticket, TicketStatus.APPROVED, actor=users["approver"], verb="ticket.approved")

    _run(django_capture_on_commit_callbacks, approve)
    m, _html = _only_mail()
    assert m.subject == "Your data-removal request was approved" and "(3 training records)" in m.body


def test_failure_notice_when_the_job_is_cancelled(ticket, users, certified_lineage, django_capture_on_commit_callbacks):
    job = _queued_job(ticket, certified_lineage)
    _run(django_capture_on_commit_callbacks, lambda: services.job_cancel(job=job, actor=users["operator"]))
    m, _html = _only_mail()
    assert m.subject == "Your data-removal request: the removal needs another attempt"
    assert "Nothing was published" in m.body


def test_certification_notice_links_the_certificate(ticket, users, certified_lineage, django_capture_on_commit_callbacks):
    _queued_job(ticket, certified_lineage)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.EVALUATING)
    ticket.refresh_from_db()

    def certify():
        with transaction.atomic():
            _ticket_transition(ticket, TicketStatus.CERTIFIED, actor="system", verb="ticket.certified")

    _run(django_capture_on_commit_callbacks, certify)
    m, html = _only_mail()
    assert m.subject == "Your data was removed: certificate issued"
    assert f"Certificate: https://privacy.example.com/requests/{ticket.public_id}/certificate/" in m.body
    assert "View your certificate" in html


def test_rolled_back_change_sends_nothing(ticket, users):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
        raise RuntimeError("the caller's transaction fails")
    assert mail.outbox == [] and not OwnerNotice.objects.exists()


class FlakyBackend:
    """An e-mail backend whose first ``failures`` sends raise (a mail server that is down)."""

    failures = 0
    calls = 0

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        type(self).calls += 1
        if type(self).calls <= type(self).failures:
            raise ConnectionRefusedError("mail server down")
        mail.outbox.extend(messages)
        return len(messages)


@pytest.mark.parametrize("failures, status, attempts, delivered", [(2, "sent", 3, 1), (10, "failed", 3, 0)])
def test_the_email_task_retries(ticket, users, settings, django_capture_on_commit_callbacks,
                                failures, status, attempts, delivered):
    settings.EMAIL_BACKEND = "tests.portal.test_notices.FlakyBackend"
    settings.NOTICE_MAX_ATTEMPTS = 3
    FlakyBackend.failures, FlakyBackend.calls = failures, 0
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    notice = OwnerNotice.objects.get(ticket=ticket)
    assert (notice.status, notice.attempts, len(mail.outbox)) == (status, attempts, delivered)
    assert (notice.last_error == "") == (status == "sent")
    if status == "failed":
        assert "ConnectionRefusedError: mail server down" in notice.last_error


def test_notices_are_listed_on_the_request_pages(ticket, users, client_for, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
        services.ticket_extend_deadline(ticket=ticket, actor=users["reviewer"], reason="Many texts.")
    page = client_for("owner").get(f"/requests/{ticket.public_id}/").content.decode()
    section = page.split('id="notices"')[1].split("</section>")[0]
    assert section.count('<tr data-kind="') == 2
    assert "Review started" in section and "Deadline extended" in section and section.count('data-status="sent"') == 2
    staff = client_for("reviewer").get(f"/dashboard/requests/{ticket.public_id}/").content.decode()
    assert "E-mails to the requester" in staff and "Your data-removal request: we need more time" in staff


def test_no_notice_before_review_so_the_identity_code_is_the_last_mail(users, forget_subject, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        t, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    assert len(mail.outbox) == 1 and "confirmation code" in mail.outbox[0].body
    assert not OwnerNotice.objects.filter(ticket=t).exists()
