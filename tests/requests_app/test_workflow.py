"""Workflow services: transitions, audit rows, deadlines, identity codes."""
import datetime as dt
import re

import pytest
from django.core import mail

from requests_app import services
from requests_app.models import AuditEvent, TicketStatus
from requests_app.workflow import (
    ALLOWED_TRANSITIONS,
    TransitionError,
    add_business_days,
    deadlines_for,
)

UTC = dt.UTC


def _code_from_mail() -> str:
    return re.search(r"code for request \S+ is (\d{6})", mail.outbox[-1].body).group(1)


@pytest.mark.parametrize(
    "received, due",
    [
        (dt.datetime(2026, 1, 31, 9, tzinfo=UTC), dt.datetime(2026, 2, 28, 9, tzinfo=UTC)),
        (dt.datetime(2028, 1, 31, 9, tzinfo=UTC), dt.datetime(2028, 2, 29, 9, tzinfo=UTC)),
        (dt.datetime(2028, 2, 29, 12, tzinfo=UTC), dt.datetime(2028, 3, 29, 12, tzinfo=UTC)),
        (dt.datetime(2026, 3, 15, tzinfo=UTC), dt.datetime(2026, 4, 15, tzinfo=UTC)),
    ],
)
def test_gdpr_deadline_is_one_calendar_month_clamped(received, due):
    ack, got = deadlines_for("GDPR", received)
    assert ack is None
    assert got == due


def test_deadline_of_non_utc_receipt_is_stored_in_utc():
    berlin = dt.timezone(dt.timedelta(hours=1))
    _, due = deadlines_for("GDPR", dt.datetime(2026, 1, 31, 0, 30, tzinfo=berlin))
    # 00:30 +01:00 on 31 Jan is 23:30 UTC on 30 Jan → 28 Feb (clamped from 30 Feb)
    assert due == dt.datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
    assert due.utcoffset() == dt.timedelta(0)


def test_deadline_across_a_dst_change_keeps_the_utc_instant():
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    received = dt.datetime(2026, 3, 15, 12, 0, tzinfo=berlin)  # CET (+01:00); DST starts 29 March
    _, due = deadlines_for("GDPR", received)
    assert due == dt.datetime(2026, 4, 15, 11, 0, tzinfo=UTC)  # one calendar month in UTC
    assert due.astimezone(berlin).hour == 13  # 13:00 CEST locally: the UTC instant is what counts


def test_deadlines_independent_of_server_time_zone(settings):
    settings.TIME_ZONE = "America/Los_Angeles"
    _, due = deadlines_for("GDPR", dt.datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
    assert due == dt.datetime(2026, 2, 28, 23, 30, tzinfo=UTC)


def test_ccpa_deadlines_ten_business_days_and_45_days():
    received = dt.datetime(2026, 11, 27, 10, tzinfo=UTC)  # a Friday
    ack, due = deadlines_for("CCPA", received)
    assert ack == dt.datetime(2026, 12, 11, 10, tzinfo=UTC)
    assert due == dt.datetime(2027, 1, 11, 10, tzinfo=UTC)
    assert add_business_days(received, 1) == dt.datetime(2026, 11, 30, 10, tzinfo=UTC)


def test_naive_datetime_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        deadlines_for("GDPR", dt.datetime(2026, 1, 1))


def test_transition_table_has_every_status_and_terminal_states():
    assert set(ALLOWED_TRANSITIONS) == set(TicketStatus.values)
    for terminal in (TicketStatus.CERTIFIED, TicketStatus.DENIED, TicketStatus.WITHDRAWN):
        assert ALLOWED_TRANSITIONS[terminal] == set()


def test_ticket_create_writes_audit_and_sends_code(users, forget_subject, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ticket, created = services.ticket_create(requester=users["owner"], subject=forget_subject)
    assert created and ticket.status == TicketStatus.SUBMITTED
    events = list(AuditEvent.objects.filter(object_id=str(ticket.public_id)))
    assert [e.verb for e in events] == ["ticket.submitted"]
    assert events[0].actor == f"user:{users['owner'].pk}:owner"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["owner@example.org"]


def test_verify_identity_allowed_transition_and_wrong_code(users, forget_subject, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    code = _code_from_mail()
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(services.ServiceError, match="wrong code"):
        services.ticket_verify_identity(ticket=ticket, code=wrong, actor=users["owner"])
    ticket.refresh_from_db()
    assert ticket.identity_attempts == 1 and ticket.status == TicketStatus.SUBMITTED
    ticket = services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    assert ticket.status == TicketStatus.IDENTITY_VERIFIED
    assert ticket.verification_level == "email_code"
    verbs = list(AuditEvent.objects.filter(object_id=str(ticket.public_id)).values_list("verb", flat=True))
    assert verbs == ["ticket.submitted", "ticket.identity_verified"]


def test_attempt_limit(users, forget_subject, settings, django_capture_on_commit_callbacks):
    settings.IDENTITY_CODE_MAX_ATTEMPTS = 2
    with django_capture_on_commit_callbacks(execute=True):
        ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    code = _code_from_mail()
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(2):
        with pytest.raises(services.ServiceError, match="wrong code"):
            services.ticket_verify_identity(ticket=ticket, code=wrong, actor=users["owner"])
    with pytest.raises(services.ServiceError, match="too many"):
        services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])


def test_refused_transition_reports_current_status_and_writes_nothing(users, forget_subject):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    before = AuditEvent.objects.count()
    with pytest.raises(TransitionError) as err:
        services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    assert err.value.current_status == TicketStatus.SUBMITTED
    assert AuditEvent.objects.count() == before
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.SUBMITTED


def test_deny_needs_exception_code_and_reason(users, forget_subject):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    with pytest.raises(services.ServiceError):
        services.ticket_deny(ticket=ticket, actor=users["approver"], exception_code="", reason="x")
    ticket = services.ticket_deny(ticket=ticket, actor=users["approver"], exception_code="art17_3_e",
                                  reason="needed for a pending legal claim")
    assert ticket.status == TicketStatus.DENIED and ticket.exception_code == "art17_3_e"
    with pytest.raises(TransitionError):
        services.ticket_withdraw(ticket=ticket, actor=users["owner"])


def test_idempotency_key_returns_original(users, forget_subject):
    a, created_a = services.ticket_create(requester=users["owner"], subject=forget_subject, idempotency_key="k1")
    b, created_b = services.ticket_create(requester=users["owner"], subject=forget_subject, idempotency_key="k1")
    assert created_a and not created_b and a.pk == b.pk


def test_subject_lookup_by_name_is_case_and_diacritics_insensitive(forget_subject):
    from requests_app.models import DataSubject

    s = DataSubject.objects.create(display_name="Aurelio Beltrán")
    assert services.subject_lookup(name="aurelio BELTRAN") == s
    with pytest.raises(services.NotFound, match="unknown data subject"):
        services.subject_lookup(name="Nobody Whatsoever")
    with pytest.raises(services.NotFound, match="unknown data subject"):
        services.subject_lookup(public_id="not-a-uuid")
