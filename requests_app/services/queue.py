"""The reviewer queue's mutations (issue 21 item 16): assign a request to a member of the legal
team, and the bulk actions (assign, legal hold) over ticked requests. Each request changes in its
own transaction with its own audit event, so that one refused request (e.g. already running, not
holdable) does not undo the others; the caller gets what was done and what was refused, and why."""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from .. import selectors
from ..audit import audit_event_record
from ..models import RemovalTicket
from ..workflow import TransitionError
from .common import TERMINAL_STATUSES, ServiceError
from .tickets import ticket_hold

__all__ = ["BulkResult", "ticket_assign", "tickets_bulk_assign", "tickets_bulk_hold"]

LEGAL_ROLES = {"legal_reviewer", "legal_approver"}


@dataclass
class BulkResult:
    done: list = field(default_factory=list)
    refused: list = field(default_factory=list)  # (ticket, reason)


def _user_label(user) -> str | None:
    return None if user is None else user.get_username()


def ticket_assign(*, ticket: RemovalTicket, actor, assignee) -> RemovalTicket:
    """Assign ``ticket`` to ``assignee`` (a legal reviewer or approver; None unassigns). Audit event
    ``ticket.assigned`` with the previous and new assignee's user names.

    Raises:
        ServiceError: the assignee is not in the legal team, or the request is closed.
    """
    if assignee is not None and not (assignee.is_superuser or selectors.user_roles(assignee) & LEGAL_ROLES):
        raise ServiceError(f"{assignee.get_username()} is not in the legal team")
    with transaction.atomic():
        locked = RemovalTicket.objects.select_for_update().select_related("assignee").get(pk=ticket.pk)
        if locked.status in TERMINAL_STATUSES:
            raise ServiceError(f"the request is closed ('{locked.status}')")
        before = _user_label(locked.assignee)
        RemovalTicket.objects.filter(pk=locked.pk).update(assignee=assignee)
        audit_event_record(actor=actor, verb="ticket.assigned", obj=locked,
                           before={"assignee": before}, after={"assignee": _user_label(assignee)})
    locked.refresh_from_db()
    return locked


def tickets_bulk_assign(*, tickets, actor, assignee) -> BulkResult:
    """:func:`ticket_assign` for each of ``tickets``; refusals are collected, not raised."""
    result = BulkResult()
    for ticket in tickets:
        try:
            result.done.append(ticket_assign(ticket=ticket, actor=actor, assignee=assignee))
        except ServiceError as exc:
            result.refused.append((ticket, str(exc)))
    return result


def tickets_bulk_hold(*, tickets, actor, reason: str) -> BulkResult:
    """:func:`tickets.ticket_hold` (legal hold, audited) for each of ``tickets``; a request that
    cannot be held now (e.g. its job is running) is listed as refused with the reason.

    Raises:
        ServiceError: no reason.
    """
    if not reason.strip():
        raise ServiceError("a legal hold needs a reason")
    result = BulkResult()
    for ticket in tickets:
        try:
            result.done.append(ticket_hold(ticket=ticket, actor=actor, reason=reason.strip()))
        except TransitionError as exc:
            result.refused.append((ticket, f"cannot be held while '{exc.current_status}'"))
        except ServiceError as exc:
            result.refused.append((ticket, str(exc)))
    return result
