"""Celery tasks: thin wrappers that take ids and call services (DESIGN §9)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="requests_app.tasks.job_run_task", bind=True, acks_late=True, ignore_result=True)
def job_run_task(self, job_id: int) -> str:
    """Run one unlearning job; a duplicate delivery is a no-op (the claim is a compare-and-set).
    The job records the Celery node name (``gpu0@host``) as its worker."""
    from .jobs import job_execute

    return job_execute(job_id=job_id, worker=self.request.hostname or None)


@shared_task(name="requests_app.tasks.preparation_run_task", bind=True, acks_late=True, ignore_result=True)
def preparation_run_task(self, job_id: int) -> str:
    """Run one preparation job (corpus ingestion, DP base, reference); duplicates are no-ops."""
    from .preparation import preparation_execute

    return preparation_execute(job_id=job_id, worker=self.request.hostname or None)


@shared_task(name="requests_app.tasks.webhook_deliver_task", bind=True, ignore_result=True, acks_late=True)
def webhook_deliver_task(self, delivery_id: int) -> None:
    """Deliver one webhook; retries with exponential back-off (2, 4, 8, … s) up to WEBHOOK_MAX_ATTEMPTS."""
    from django.conf import settings

    from .services import webhook_deliver, webhook_mark_failed

    if webhook_deliver(delivery_id=delivery_id):
        return
    if self.request.retries + 1 >= settings.WEBHOOK_MAX_ATTEMPTS:
        webhook_mark_failed(delivery_id=delivery_id)
        return
    raise self.retry(countdown=2 ** (self.request.retries + 1))


@shared_task(name="requests_app.tasks.webhook_fan_out_task", ignore_result=True)
def webhook_fan_out_task(delivery_ids: list[int]) -> None:
    """One event's deliveries (recorded in the event's transaction): one ``webhook_deliver_task``
    each, so that every endpoint retries on its own."""
    for delivery_id in delivery_ids:
        webhook_deliver_task.delay(delivery_id)


@shared_task(name="requests_app.tasks.owner_notice_send_task", bind=True, ignore_result=True, acks_late=True)
def owner_notice_send_task(self, notice_id: int) -> None:
    """E-mail one outcome notice to the data owner; retries with back-off (2, 4, 8, … s) up to
    NOTICE_MAX_ATTEMPTS, then marks it failed (it stays listed on the request page)."""
    from django.conf import settings

    from .services import owner_notice_mark_failed, owner_notice_send

    if owner_notice_send(notice_id=notice_id):
        return
    if self.request.retries + 1 >= settings.NOTICE_MAX_ATTEMPTS:
        owner_notice_mark_failed(notice_id=notice_id)
        return
    raise self.retry(countdown=2 ** (self.request.retries + 1))


@shared_task(name="requests_app.tasks.tickets_flag_due_soon_task", ignore_result=True)
def tickets_flag_due_soon_task() -> int:
    from .services import tickets_flag_due_soon

    return tickets_flag_due_soon()


@shared_task(name="requests_app.tasks.evidence_purge_task", ignore_result=True)
def evidence_purge_task() -> int:
    from .services import evidence_purge_expired

    return evidence_purge_expired()


@shared_task(name="requests_app.tasks.jobs_requeue_stale_task", ignore_result=True)
def jobs_requeue_stale_task() -> dict:
    """Periodic (celery beat): re-queue jobs whose worker stopped sending heartbeats."""
    from .services import jobs_requeue_stale, preparations_requeue_stale

    return {**jobs_requeue_stale(), "preparations": preparations_requeue_stale()}


@shared_task(name="requests_app.tasks.audit_log_seal_task", ignore_result=True)
def audit_log_seal_task() -> int:
    """Periodic (celery beat): seal new audit events into the log; returns the tree size."""
    from .audit_log import audit_log_seal

    head = audit_log_seal()
    return head.tree_size if head else 0


@shared_task(name="requests_app.tasks.email_send_task", bind=True, ignore_result=True, max_retries=5)
def email_send_task(self, subject: str, body: str, to: list[str]) -> None:
    """Send one e-mail (queue ``email``); an SMTP or connection error is retried with back-off
    (2, 4, 8, … s, at most 5 times)."""
    import smtplib

    from django.conf import settings
    from django.core.mail import send_mail

    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
    except (smtplib.SMTPException, OSError) as exc:
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from None
