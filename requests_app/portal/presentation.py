"""Read-only helpers that turn rows into what the templates show (labels, timelines, summaries)."""
from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..models import AuditEvent
from . import labels

# The data owner's wording of ticket states (staff see ``TicketStatus`` labels, models.py)
STATUS_LABELS = {
    "submitted": gettext_lazy("Waiting for your confirmation code"),
    "identity_verified": gettext_lazy("Confirmed, waiting for review"),
    "in_review": gettext_lazy("Being reviewed by our legal team"),
    "approved": gettext_lazy("Approved"),
    "queued": gettext_lazy("Approved, removal scheduled"),
    "running": gettext_lazy("Removal in progress"),
    "evaluating": gettext_lazy("Checking that the data is gone"),
    "certified": gettext_lazy("Done: data removed, certificate issued"),
    "denied": gettext_lazy("Declined"),
    "withdrawn": gettext_lazy("Withdrawn by you"),
    "failed": gettext_lazy("The removal did not pass its checks; our team will try again"),
    "on_hold": gettext_lazy("On hold"),
    "no_data": gettext_lazy("Answered: we hold no data about this person"),
    # job statuses
    "succeeded": gettext_lazy("Succeeded"),
    "cancelled": gettext_lazy("Cancelled"),
}

VERB_LABELS = {
    "ticket.submitted": gettext_lazy("Request received"),
    "ticket.identity_verified": gettext_lazy("Identity confirmed with the e-mailed code"),
    "ticket.review_started": gettext_lazy("Legal review started"),
    "ticket.approved": gettext_lazy("Request approved; the data to remove was fixed"),
    "ticket.queued": gettext_lazy("Removal scheduled"),
    "ticket.running": gettext_lazy("Removal from the model started"),
    "ticket.evaluating": gettext_lazy("Checking that the data is gone"),
    "ticket.certified": gettext_lazy("Removal confirmed; certificate issued"),
    "ticket.denied": gettext_lazy("Request declined"),
    "ticket.withdrawn": gettext_lazy("Request withdrawn"),
    "ticket.failed": gettext_lazy("The removal did not pass its checks"),
    "ticket.on_hold": gettext_lazy("Put on hold"),
    "ticket.code_resent": gettext_lazy("A new confirmation code was sent"),
    "ticket.deadline_extended": gettext_lazy("Deadline extended"),
    "ticket.retried": gettext_lazy("Removal tried again"),
    "ticket.hold_released": gettext_lazy("Hold released"),
    "ticket.due_soon": gettext_lazy("Deadline is near"),
    "ticket.no_data_held": gettext_lazy("Answered: no data about this person is held"),
    "ticket.subject_resolved": gettext_lazy("The person was found in the data by our team"),
    "ticket.assigned": gettext_lazy("Assigned to a reviewer"),
    "ticket.evidence_purged": gettext_lazy("The text you attached was deleted; only its fingerprint is kept"),
}

def _due_soon() -> timedelta:
    return timedelta(days=int(getattr(settings, "DUE_SOON_DAYS", 7)))


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


def deadline_state(due_at, now=None) -> str:
    """``overdue``, ``due_soon`` (within ``DUE_SOON_DAYS``, default 7) or ``ok``."""
    now = now or timezone.now()
    if due_at < now:
        return "overdue"
    if due_at - now <= _due_soon():
        return "due_soon"
    return "ok"


def ticket_timeline(ticket, *, viewer, staff: bool) -> list[dict]:
    """The ticket's audit events (object id = the ticket's public id), oldest first.

    Owners see who acted only as "you", "our team" or "automatic"; staff see the actor label.
    """
    events = AuditEvent.objects.filter(object_type="RemovalTicket", object_id=str(ticket.public_id)).order_by("id")
    own = f"user:{viewer.pk}:{viewer.get_username()}"
    out = []
    for e in events:
        if staff:
            who = e.actor
        elif e.actor == own:
            who = _("you")
        elif e.actor.startswith("user:"):
            who = _("our team")
        else:
            who = _("automatic")
        detail = ""
        after = e.after or {}
        if e.verb == "ticket.denied":
            detail = after.get("decision_reason", "")
        elif e.verb == "ticket.deadline_extended":
            detail = after.get("reason", "")
        elif e.verb == "ticket.failed" and staff:
            detail = after.get("failure_reason", "")
        out.append({"timestamp": e.timestamp, "verb": e.verb, "label": str(VERB_LABELS.get(e.verb, e.verb)),
                    "who": who, "detail": detail, "status": after.get("status", "")})
    return out


REASON_TEXT = [
    (r"^ok$", gettext_lazy("It was signed with one of our published keys, and nothing in it was changed since.")),
    (r"^bad signature", gettext_lazy("The signature does not match the content: the certificate was changed after it was signed, or it is forged.")),
    (r"^(signed by an unknown key|unknown key id)", gettext_lazy("It was signed with a key that we have not published.")),
    (r"^key used outside its validity", gettext_lazy("It was signed with one of our keys, but at a date when that key was not in use (before it was issued or after it was retired).")),
    (r"^unsupported algorithm", gettext_lazy("It uses a signature algorithm we do not issue.")),
    (r"^audit-log proof", gettext_lazy("Its signature is ours, but the proof that its issuance is recorded in our audit log is missing or does not check out: the document or the log it points to was changed.")),
    (r"^malformed JSON", gettext_lazy("The file is not strict JSON (for example a duplicated field, NaN, or a number written in a form we never write), so it is not a document we issued unchanged.")),
    (r"^malformed", gettext_lazy("It is not a complete certificate document.")),
]


def verification_reason_text(reason: str) -> str:
    """A plain-language explanation followed by the technical reason."""
    for pattern, text in REASON_TEXT:
        if re.match(pattern, reason or ""):
            return f"{text} ({reason})" if reason != "ok" else str(text)
    return reason


def _scalar(v):
    """``v`` if it is a displayable scalar, else None (a pasted certificate may hold anything)."""
    return v if v is None or isinstance(v, (str, int, float, bool)) else None


def _scalar_dict(d) -> dict:
    return {str(k): _scalar(v) for k, v in d.items()} if isinstance(d, dict) else {}


def certificate_summary(payload: dict) -> dict:
    """The main statements of a certificate payload, for people (values as given, not trusted).

    Robust to any JSON: a field of the wrong type is shown as missing (issue 13 item 5)."""
    def get(d, *path):
        for p in path:
            if not isinstance(d, dict):
                return None
            d = d.get(p)
        return _scalar(d)

    from evaluation.certificate_html import document_title

    def items(v) -> list:
        return v if isinstance(v, list) else []

    payload = payload if isinstance(payload, dict) else {}
    checks = (payload.get("verdicts") or {}).get("checks") if isinstance(payload.get("verdicts"), dict) else None
    dp = payload.get("dp_guarantee")
    rows = []
    for c in items(checks):
        if isinstance(c, dict):
            rows.append({**_scalar_dict(c), **labels.check_row(c)})
    verdicts = payload.get("verdicts") if isinstance(payload.get("verdicts"), dict) else {}
    tickets = []
    for t in items(payload.get("tickets")):
        if isinstance(t, dict):
            row = _scalar_dict(t)
            row["jurisdiction_label"] = labels.choice_label("jurisdiction", row.get("jurisdiction"))
            row["legal_ground_label"] = (labels.choice_label("legal_ground", row["legal_ground"])
                                         if row.get("legal_ground") else "")
            tickets.append(row)
    return {
        "title": document_title(payload),
        "is_suppression_notice": payload.get("schema") == "suppression-notice/1",
        "statement": get(payload, "statement"),
        "certificate_id": get(payload, "certificate_id"),
        "issued_at": get(payload, "issued_at"),
        "issuer": get(payload, "issuer"),
        "tickets": tickets,
        "model": get(payload, "model", "name"),
        "version_before": get(payload, "version_before", "weights_sha256"),
        "version_after": get(payload, "version_after", "weights_sha256"),
        "method": get(payload, "job", "method"),
        "method_label": labels.method_label(get(payload, "job", "method") or ""),
        "forget_count": get(payload, "forget_set", "count"),
        "forget_sha256": get(payload, "forget_set", "sha256"),
        "dp": _dp_summary(dp) if isinstance(dp, dict) else None,
        "passed": get(payload, "verdicts", "passed"),
        "checks": rows,
        # one list (issue 21 item 14): the payload's limitations and the verdict's "not verified", each once
        "limitations": _unique_statements(items(payload.get("limitations")) + items(payload.get("not_verified"))
                                          + items(verdicts.get("not_verified"))),
    }


def _unique_statements(values: list) -> list[str]:
    out, seen = [], set()
    for x in values:
        if isinstance(x, (str, int, float)) and not isinstance(x, bool):
            text = labels.readable_text(str(x))
            if text not in seen:
                seen.add(text)
                out.append(text)
    return out


def _dp_summary(dp: dict) -> dict:
    """The DP statement of a certificate with readable figures (ε to 3 significant digits, δ as a power of 10)."""
    out = _scalar_dict(dp)
    eps, delta = dp.get("per_subject_epsilon"), dp.get("per_subject_delta")
    out["epsilon_text"] = labels.format_number(eps, 2) if isinstance(eps, (int, float)) else ""
    out["delta_text"] = labels.scientific(delta) if isinstance(delta, (int, float)) else ""
    out["statement"] = labels.readable_text(str(dp["statement"])) if isinstance(dp.get("statement"), str) else ""
    return out


def page(request, template: str, context: dict | None = None, status: int = 200):
    """``render`` plus what the base template needs (whether to show the staff navigation)."""
    from django.shortcuts import render

    from ..selectors import user_is_staff_role, user_roles

    staff = user_is_staff_role(request.user)
    ctx = {"is_staff_role": staff,
           "can_audit": staff and (request.user.is_superuser
                                   or bool(user_roles(request.user) & {"auditor", "legal_reviewer", "legal_approver"}))}
    ctx.update(context or {})
    return render(request, template, ctx, status=status)
