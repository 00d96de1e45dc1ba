"""Fault tests with real processes: a worker SIGKILLed mid-job, a job whose workers keep dying."""
from __future__ import annotations

import re

import pytest
from django.core import mail

from requests_app import selectors, services
from requests_app.models import (
    AuditEvent,
    Certificate,
    JobStatus,
    ModelVersion,
    TicketStatus,
    UnlearningJob,
)

from .conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fast_heartbeats(settings):
    settings.JOB_HEARTBEAT_INTERVAL = 0.5
    settings.JOB_HEARTBEAT_TIMEOUT = 4.0
    settings.JOB_MAX_ATTEMPTS = 3


def _approved_job(users, forget_subject, **hp):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    ids = [r.pk for r in selectors.ticket_resolution(ticket=ticket)]
    job = services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2", record_ids=ids,
                                  hyperparameters=hp)
    return ticket, job


def test_sigkill_mid_job_then_requeue_finishes_once(fast_heartbeats, worker_pool, target_model, forget_subject,
                                                    users):
    first = worker_pool.start()
    ticket, job = _approved_job(users, forget_subject, epochs=60)
    assert wait_for(lambda: (UnlearningJob.objects.get(pk=job.pk).progress or {}).get("step", 0) > 0, timeout=240)
    worker_pool.kill(first)  # SIGKILL while training
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1

    worker_pool.start()
    # the periodic task (celery beat in production) notices the silent job and re-queues it
    assert wait_for(lambda: services.jobs_requeue_stale()["requeued"] == 1, timeout=60, interval=1)
    assert wait_for(lambda: UnlearningJob.objects.get(pk=job.pk).status in (JobStatus.SUCCEEDED, JobStatus.FAILED),
                    timeout=300), worker_pool.logs()
    job.refresh_from_db()
    ticket.refresh_from_db()
    assert job.attempts == 2
    assert ModelVersion.objects.filter(produced_by=job).count() == 1
    assert Certificate.objects.filter(job=job).count() == (1 if job.status == JobStatus.SUCCEEDED else 0)
    assert ticket.status == (TicketStatus.CERTIFIED if job.status == JobStatus.SUCCEEDED else TicketStatus.FAILED)
    verbs = list(AuditEvent.objects.filter(object_id=str(job.public_id)).values_list("verb", flat=True))
    assert verbs.count("job.started") == 2 and verbs.count("job.requeued") == 1
    assert verbs.count("job.finished") == 1 or "job.failed" in verbs


def test_job_that_keeps_dying_fails_after_max_attempts(fast_heartbeats, settings, worker_pool, target_model,
                                                       forget_subject, users):
    settings.JOB_MAX_ATTEMPTS = 2
    worker_pool.env["JOB_MAX_ATTEMPTS"] = "2"
    ticket, job = _approved_job(users, forget_subject, epochs=60)
    for attempt in (1, 2):
        proc = worker_pool.start()
        assert wait_for(lambda attempt=attempt: UnlearningJob.objects.get(pk=job.pk).attempts == attempt
                        and (UnlearningJob.objects.get(pk=job.pk).progress or {}).get("step", 0) > 0, timeout=240)
        worker_pool.kill(proc)
        UnlearningJob.objects.filter(pk=job.pk).update(progress={})
        assert wait_for(lambda: sum(services.jobs_requeue_stale().values()) == 1, timeout=60, interval=1)
    job.refresh_from_db()
    ticket.refresh_from_db()
    assert job.status == JobStatus.FAILED and "gave up after 2 attempts" in job.error
    assert ticket.status == TicketStatus.FAILED and "gave up" in ticket.failure_reason
    assert ModelVersion.objects.filter(produced_by=job).count() == 0
