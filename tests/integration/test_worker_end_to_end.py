"""A ticket end to end through a real Celery worker process on Redis against PostgreSQL.

Run by ``infra/dev.sh test`` with DATABASE_URL (PostgreSQL via psycopg 3) and CELERY_BROKER_URL (Redis).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.db import connection

from requests_app import selectors, services
from requests_app.models import AuditEvent, JobStatus, ModelVersion, TicketStatus, UnlearningJob

from .conftest import require_real_stack, wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_ticket_processed_by_worker_exactly_once(worker, target_model, forget_subject, users, settings):
    import re

    from django.core import mail

    from requests_app.tasks import job_run_task

    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    record_ids = [r.pk for r in selectors.ticket_resolution(ticket=ticket)]
    assert len(record_ids) == 20
    job = services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2", record_ids=record_ids)

    finished = wait_for(lambda: UnlearningJob.objects.get(pk=job.pk).status
                         in (JobStatus.SUCCEEDED, JobStatus.FAILED), timeout=300)
    assert finished, f"worker did not finish the job: {UnlearningJob.objects.get(pk=job.pk).status}"
    job.refresh_from_db()
    assert job.worker.startswith("test-worker")  # claimed by the worker process, not in-process
    assert job.attempts == 1
    ticket.refresh_from_db()
    assert ticket.status in (TicketStatus.CERTIFIED, TicketStatus.FAILED)
    assert ticket.status == (TicketStatus.CERTIFIED if job.status == JobStatus.SUCCEEDED else TicketStatus.FAILED)

    # a duplicate delivery of the same task is a no-op: still one attempt, one produced version
    job_run_task.delay(job.pk)
    time.sleep(5)
    job.refresh_from_db()
    assert job.attempts == 1
    assert ModelVersion.objects.filter(produced_by=job).count() == 1
    verbs = list(AuditEvent.objects.filter(object_id=str(job.public_id)).values_list("verb", flat=True))
    assert verbs.count("job.started") == 1 and verbs[0] == "job.created"

    # the owner's outcome e-mails went through the broker and were sent by the worker (issue 21 item 2)
    from requests_app.models import OwnerNotice

    last = "certification" if ticket.status == TicketStatus.CERTIFIED else "failure"
    assert wait_for(lambda: set(OwnerNotice.objects.filter(ticket=ticket).values_list("status", flat=True)) == {"sent"}
                    and OwnerNotice.objects.filter(ticket=ticket).count() == 3, timeout=60)
    assert list(OwnerNotice.objects.filter(ticket=ticket).order_by("id").values_list("kind", flat=True)) == [
        "review", "approval", last]


def test_postgres_trigger_refuses_update_and_delete_of_audit_rows(db):
    require_real_stack()
    from django.db import DatabaseError, transaction

    from requests_app.audit import audit_event_record
    from requests_app.models import DataSubject

    subject = DataSubject.objects.create(display_name="Z")
    with transaction.atomic():
        event = audit_event_record(actor="t", verb="v", obj=subject)
    for sql in ("UPDATE requests_app_auditevent SET verb = 'x' WHERE id = %s",
                "DELETE FROM requests_app_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(sql, [event.id])
    assert AuditEvent.objects.get(pk=event.pk).verb == "v"
