"""The owner's status stepper (issue 21 item 15): what happened, what comes next and by when.

Six steps in the order the workflow runs them (DESIGN §4). A step is ``done`` (with the time it
happened, from the audit trail), ``current`` (with what the owner or our team does now) or
``upcoming`` (the legal deadline for the answer is on the last step). A declined or withdrawn
request ends at that step: the rest is ``skipped`` and no deadline is promised.
"""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from ..models import TicketStatus as S

STEPS = [
    ("received", _("Request received"), ("ticket.submitted",)),
    ("identity", _("You confirm it is you"), ("ticket.identity_verified",)),
    ("review", _("Legal review"), ("ticket.review_started",)),
    ("removal", _("Removal from the model"), ("ticket.approved", "ticket.running")),
    ("checks", _("Checks that the data is gone"), ("ticket.evaluating",)),
    ("certificate", _("Certificate issued"), ("ticket.certified",)),
]

#: the step a ticket status is at (index into STEPS)
CURRENT = {S.SUBMITTED: 1, S.IDENTITY_VERIFIED: 2, S.IN_REVIEW: 2, S.APPROVED: 3, S.QUEUED: 3, S.RUNNING: 3,
           S.FAILED: 3, S.EVALUATING: 4, S.CERTIFIED: 6, S.ON_HOLD: None, S.DENIED: None, S.WITHDRAWN: None,
           S.NO_DATA: None}

NOW = {
    1: _("Type in the 6-digit code we e-mailed you."),
    2: _("Our legal team checks the request and finds the texts about you."),
    3: _("The model is being retrained without your data."),
    4: _("We test that the model no longer knows the data and still works for others."),
}


def ticket_steps(ticket, timeline: list[dict]) -> dict:
    """``{"steps": [{key, label, state, when, note}], "ended": "denied"|"withdrawn"|"", "due_at"}``."""
    happened = {}
    for event in timeline:
        happened.setdefault(event["verb"], event["timestamp"])
    reached = 0
    for i, (_key, _label, verbs) in enumerate(STEPS):
        if any(v in happened for v in verbs):
            reached = i + 1
    current = CURRENT.get(ticket.status)
    ended = ticket.status if ticket.status in (S.DENIED, S.WITHDRAWN, S.NO_DATA) else ""
    if current is None:  # on hold, declined or withdrawn: the furthest step the trail shows
        current = reached
    steps = []
    for i, (key, label, verbs) in enumerate(STEPS):
        when = next((happened[v] for v in verbs if v in happened), None)
        if i < current:
            state = "done"
        elif ended:
            state = "skipped"
        elif i == current:
            state = "current"
        else:
            state = "upcoming"
        note = ""
        if state == "current":
            note = str(NOW.get(i, ""))
            if ticket.status == S.ON_HOLD:
                note = str(_("On hold: our legal team paused the request for now."))
            elif ticket.status == S.FAILED:
                note = str(_("The first attempt did not pass its checks; our team tries again."))
        steps.append({"key": key, "label": str(label), "state": state, "when": when if state == "done" else None,
                      "note": note, "last": i == len(STEPS) - 1})
    return {"steps": steps, "ended": ended, "due_at": None if ended or ticket.status == S.CERTIFIED else ticket.due_at}
