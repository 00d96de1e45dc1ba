"""Requests naming someone the service cannot find (issue 21 item 3).

Such a request is filed like any other (``ticket_create(subject=None, subject_name_given=...)``):
its legal deadline runs from receipt (GDPR Art. 12(3): one month; CCPA regulations §7021: 45
days), and a reviewer answers it in one of two ways:

- :func:`ticket_subject_resolve`: the reviewer found the person by hand (another spelling, an
  alias) and links the data subject; the request then goes on as usual (review, approval).
- :func:`ticket_confirm_no_data`: nothing about the person is in the training data; the request is
  answered "no data held" (status ``no_data``), with its own audit event ``ticket.no_data_held``
  and its own owner notice (kind ``no_data``), both in the same transaction. GDPR Art. 12(3)/(4)
  requires an answer even when there is nothing to erase; CCPA regulations §7102 count it as a
  response.
"""
from __future__ import annotations

from django.db import transaction

from .. import selectors
from ..audit import audit_event_record
from ..models import DataSubject, RemovalTicket, TicketStatus, TrainingRecord
from .common import NotFound, ServiceError, _ticket_transition
from .webhooks import webhook_event_emit

__all__ = ["subject_find_by_name", "ticket_confirm_no_data", "ticket_subject_resolve"]

#: statuses in which a reviewer may link the subject by hand (before any approval)
RESOLVABLE = (TicketStatus.SUBMITTED, TicketStatus.IDENTITY_VERIFIED, TicketStatus.IN_REVIEW, TicketStatus.ON_HOLD)


def subject_find_by_name(name: str) -> DataSubject | None:
    """The one data subject of that display name or alias (case- and diacritics-insensitive), or
    None when nobody has it (the request is then filed with the name given).

    Raises:
        NotFound: the name is ambiguous (several subjects; the requester must add detail).
    """
    matches = selectors.subjects_matching_name(name or "")
    if len(matches) > 1:
        raise NotFound(f"data subject name '{name}' is ambiguous ({len(matches)} matches); give the subject id")
    return matches[0] if matches else None


def ticket_subject_resolve(*, ticket: RemovalTicket, actor, subject: DataSubject) -> RemovalTicket:
    """Link the data subject a reviewer found by hand to a request filed without one.

    Audit event ``ticket.subject_resolved`` (before: the name given; after: the subject's public
    id) in the same transaction; the status does not change.

    Raises:
        ServiceError: the request already names a subject, or it is past review (approved or closed).
    """
    with transaction.atomic():
        locked = RemovalTicket.objects.select_for_update().get(pk=ticket.pk)
        if locked.subject_id is not None:
            raise ServiceError("this request already names a data subject")
        if locked.status not in RESOLVABLE:
            raise ServiceError(f"the request is '{locked.status}'; a subject can only be linked before approval")
        RemovalTicket.objects.filter(pk=locked.pk).update(subject=subject)
        audit_event_record(actor=actor, verb="ticket.subject_resolved", obj=locked,
                           before={"subject": None, "subject_name_given": locked.subject_name_given},
                           after={"subject": str(subject.public_id)})
        webhook_event_emit(event="ticket.subject_resolved",
                           payload={"ticket": str(locked.public_id), "subject": str(subject.public_id)})
    locked.refresh_from_db()
    return locked


def ticket_confirm_no_data(*, ticket: RemovalTicket, actor, note: str = "") -> RemovalTicket:
    """Answer a request in review "no data held": ``in_review`` → ``no_data`` (terminal).

    Allowed when the request names nobody found (``subject`` is None) or the subject has no
    training record left to remove (:func:`selectors.ticket_resolution` is empty and no unforgotten
    training record of any corpus is linked to the subject). The audit event
    ``ticket.no_data_held`` records the note and the resolution size checked (0); the owner's
    ``no_data`` notice is stored in the same transaction and sent after commit.

    Raises:
        ServiceError: training records of the request's subject or name were found.
        TransitionError: the request is not in review.
    """
    found = len(selectors.ticket_resolution(ticket=ticket))
    if ticket.subject_id is not None:  # any corpus, also with no model registered yet
        found = max(found, TrainingRecord.objects.filter(subject_id=ticket.subject_id, forgotten_by__isnull=True,
                                                         split=TrainingRecord.SPLIT_TRAIN).count())
    if found:
        raise ServiceError(f"{found} training record(s) match this request; approve or deny it instead")
    with transaction.atomic():
        return _ticket_transition(
            ticket, TicketStatus.NO_DATA, actor=actor, verb="ticket.no_data_held",
            fields={"decision": "no_data", "decision_reason": note.strip()},
            audit_extra={"records_found": 0, "subject_found": ticket.subject_id is not None},
        )
