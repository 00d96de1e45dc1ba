"""Outgoing e-mail off the request path (issue 17 part 2): queued after commit on the ``email`` queue."""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

log = logging.getLogger(__name__)


def email_send_on_commit(*, subject: str, body: str, to: list[str]) -> None:
    """After the caller's transaction commits, queue one e-mail (``email_send_task``, queue ``email``;
    run inline when Celery is eager). If the broker refuses the message, the e-mail is sent in this
    process instead: a committed request is never answered with an error because of its e-mail.
    The message body rides the broker until a worker sends it (an identity code included: the code
    is short-lived, ``IDENTITY_CODE_TTL_SECONDS``)."""
    def enqueue():
        from ..tasks import email_send_task

        try:
            email_send_task.delay(subject, body, list(to))
        except Exception:  # noqa: BLE001 - broker down: deliver now rather than lose it
            log.exception("could not queue an e-mail; sending it in the web process")
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, list(to))

    transaction.on_commit(enqueue)
