"""Ticket state machine (DESIGN §4): the allowed transitions and deadline arithmetic."""
from __future__ import annotations

import datetime as dt

from dateutil.relativedelta import relativedelta

from .models import Jurisdiction
from .models import TicketStatus as S

ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    S.SUBMITTED: {S.IDENTITY_VERIFIED, S.WITHDRAWN, S.DENIED, S.ON_HOLD},
    S.IDENTITY_VERIFIED: {S.IN_REVIEW, S.WITHDRAWN, S.DENIED, S.ON_HOLD},
    S.IN_REVIEW: {S.APPROVED, S.DENIED, S.WITHDRAWN, S.ON_HOLD, S.NO_DATA},
    S.APPROVED: {S.QUEUED, S.WITHDRAWN, S.ON_HOLD},
    S.QUEUED: {S.RUNNING, S.WITHDRAWN, S.FAILED},
    S.RUNNING: {S.EVALUATING, S.FAILED},
    S.EVALUATING: {S.CERTIFIED, S.FAILED, S.RUNNING},  # running again: a re-claimed job
    S.FAILED: {S.QUEUED},
    # release returns to the step before the hold (services.tickets.ticket_release_hold)
    S.ON_HOLD: {S.SUBMITTED, S.IDENTITY_VERIFIED, S.IN_REVIEW},
    S.CERTIFIED: set(),
    S.DENIED: set(),
    S.WITHDRAWN: set(),
    S.NO_DATA: set(),  # answered: no data held (issue 21 item 3)
}


#: States a legal hold may return to (the ticket's ``status_before_hold``).
HOLD_RETURN_STATES = (S.SUBMITTED, S.IDENTITY_VERIFIED, S.IN_REVIEW)


def sources_for(target: str) -> list[str]:
    """Every status from which ``target`` may be reached."""
    return sorted(src for src, dsts in ALLOWED_TRANSITIONS.items() if target in dsts)


class TransitionError(Exception):
    """A forbidden or stale transition; carries the current status (the API answers 409)."""

    def __init__(self, message: str, current_status: str | None):
        super().__init__(message)
        self.current_status = current_status


def add_business_days(start: dt.datetime, days: int) -> dt.datetime:
    """``start`` plus ``days`` business days (Monday–Friday; public holidays not modelled)."""
    current = start
    added = 0
    while added < days:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            added += 1
    return current


def deadlines_for(jurisdiction: str, received_at: dt.datetime) -> tuple[dt.datetime | None, dt.datetime]:
    """(acknowledgement due, response due) in UTC.

    GDPR Art. 12(3): one month from receipt, calendar-month arithmetic clamped to the month end
    (31 Jan → 28/29 Feb). CCPA regulations §7021: acknowledge within 10 business days, respond within
    45 calendar days.

    Raises:
        ValueError: for a naive ``received_at``.
    """
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    received_at = received_at.astimezone(dt.UTC)
    if jurisdiction == Jurisdiction.CCPA:
        return add_business_days(received_at, 10), received_at + dt.timedelta(days=45)
    return None, received_at + relativedelta(months=1)
