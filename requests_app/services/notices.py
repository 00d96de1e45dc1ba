"""E-mail notices to the data owner, one per outcome of their request (issue 21 item 2).

Sent like the identity codes (``services.email``: Django's mail framework after the transaction
commits, on the ``email`` queue, inline if the broker refuses), plus a row per notice so that the
request page lists each one with its delivery state:

1. :func:`owner_notice_queue` renders the plain-text and HTML templates
   (``templates/emails/notice.txt`` / ``.html``) and stores an :class:`OwnerNotice` in the
   caller's transaction (so a rolled-back change never tells the owner anything);
2. on commit, ``tasks.owner_notice_send_task`` (queue ``email``) calls :func:`owner_notice_send`; a failure is
   retried with back-off (2, 4, 8 … s) up to ``NOTICE_MAX_ATTEMPTS`` (default 6), then the notice
   is marked ``failed`` and stays listed on the request page for staff to follow up.

GDPR Art. 12(3): information on action taken (and any extension with its reasons) within the
deadline; Art. 12(4): a refusal gives its reasons and the complaint route; CCPA §1798.105 /
regulations §7022: the business responds to the consumer's request.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

log = logging.getLogger(__name__)

#: the audit verb of a ticket transition → the notice it sends (other verbs send none)
VERB_NOTICES = {
    "ticket.review_started": "review",
    "ticket.approved": "approval",
    "ticket.denied": "denial",
    "ticket.withdrawn": "withdrawal",
    "ticket.failed": "failure",
    "ticket.certified": "certification",
    "ticket.no_data_held": "no_data",
}

SUBJECTS = {
    "review": "Your data-removal request is being reviewed",
    "extension": "Your data-removal request: we need more time",
    "approval": "Your data-removal request was approved",
    "denial": "Your data-removal request was declined",
    "withdrawal": "Your data-removal request was withdrawn",
    "failure": "Your data-removal request: the removal needs another attempt",
    "certification": "Your data was removed: certificate issued",
    "no_data": "Your data-removal request: we hold no data about this person",
}


def _portal_url(path: str) -> str:
    return str(getattr(settings, "PORTAL_BASE_URL", "")).rstrip("/") + path


def owner_notice_context(ticket, kind: str, extra: dict | None = None) -> dict:
    from ..legal import complaint_options
    from ..portal.labels import choice_label

    url = _portal_url(reverse("portal:request_detail", args=[ticket.public_id]))
    ctx = {
        "kind": kind, "ticket": ticket, "url": url, "reference": str(ticket.public_id),
        "due": f"{ticket.due_at.day} {ticket.due_at:%B %Y, %H:%M} UTC",
        "law": choice_label("jurisdiction", ticket.jurisdiction),
        "exception": choice_label("exception", ticket.exception_code) if ticket.exception_code else "",
        "reason": ticket.decision_reason if kind in ("denial", "no_data") else "",
        "name_given": ticket.subject_name_given,
        "complaint": complaint_options(ticket.jurisdiction) if kind == "denial" else [],
        "certificate_url": url + "certificate/",
        "forget_count": len(ticket.resolved_record_ids or []),
    }
    ctx.update(extra or {})
    return ctx


def owner_notice_queue(*, ticket, kind: str, extra: dict | None = None):
    """Store the ``kind`` notice for ``ticket``'s requester and send it after commit.

    Must run inside the transaction of the change it reports. Returns the notice, or None when the
    requester has no e-mail address.
    """
    from ..models import OwnerNotice

    email = getattr(ticket.requester, "email", "")
    if not email:
        return None
    ctx = owner_notice_context(ticket, kind, extra)
    notice = OwnerNotice.objects.create(
        ticket=ticket, kind=kind, to_email=email, subject=SUBJECTS[kind],
        body_text=render_to_string("emails/notice.txt", ctx).strip() + "\n",
        body_html=render_to_string("emails/notice.html", ctx),
    )

    def send(notice_id=notice.pk):
        from ..tasks import owner_notice_send_task

        try:
            owner_notice_send_task.delay(notice_id)
        except Exception:  # noqa: BLE001 - broker down: send now (as services.email does) rather than wait
            log.exception("could not queue notice %s; sending it in this process", notice_id)
            owner_notice_send(notice_id=notice_id)

    transaction.on_commit(send)
    return notice


def owner_notice_for_transition(*, ticket, verb: str):
    """The notice of a ticket transition (``VERB_NOTICES``), queued in its transaction."""
    kind = VERB_NOTICES.get(verb)
    return owner_notice_queue(ticket=ticket, kind=kind) if kind else None


def owner_notice_send(*, notice_id: int) -> bool:
    """Send one notice (plain text with an HTML alternative); records the attempt.

    Returns True when sent (or already sent). Raises nothing on a mail-server error: the caller
    (a Celery task with back-off) retries on False.
    """
    from django.core.mail import EmailMultiAlternatives

    from ..models import OwnerNotice

    notice = OwnerNotice.objects.get(pk=notice_id)
    if notice.status == OwnerNotice.Status.SENT:
        return True
    message = EmailMultiAlternatives(notice.subject, notice.body_text, settings.DEFAULT_FROM_EMAIL, [notice.to_email])
    if notice.body_html:
        message.attach_alternative(notice.body_html, "text/html")
    error = ""
    try:
        message.send()
    except Exception as exc:  # noqa: BLE001 — SMTP, socket and backend errors alike are retried
        error = f"{type(exc).__name__}: {exc}"
        log.warning("notice %s to the owner of ticket %s not sent: %s", notice.pk, notice.ticket_id, error)
    OwnerNotice.objects.filter(pk=notice.pk).update(
        attempts=notice.attempts + 1, last_error=error[:2000],
        status=OwnerNotice.Status.PENDING if error else OwnerNotice.Status.SENT,
        sent_at=None if error else timezone.now(),
    )
    return not error


def owner_notice_mark_failed(*, notice_id: int) -> None:
    from ..models import OwnerNotice

    OwnerNotice.objects.filter(pk=notice_id).exclude(status=OwnerNotice.Status.SENT).update(
        status=OwnerNotice.Status.FAILED)
