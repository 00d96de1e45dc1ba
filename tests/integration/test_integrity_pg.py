"""Issue 13 item 6 on PostgreSQL: Idempotency-Key races and withdraw-vs-claim races under real
parallel transactions (run with your own DATABASE_URL, see tests/integration/conftest.py)."""
from __future__ import annotations

import re
import threading

import pytest
from django.core import mail
from django.db import connection

from requests_app import selectors, services
from requests_app.models import JobStatus, RemovalTicket, TicketStatus, UnlearningJob
from requests_app.workflow import TransitionError

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _race(fn, n: int) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i):
        try:
            barrier.wait()
            results[i] = ("ok", fn(i))
        except Exception as exc:  # noqa: BLE001
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL")


def test_same_key_same_body_race_files_one_ticket(users, forget_subject):
    results = _race(lambda i: services.ticket_create(
        requester=users["owner"], subject=forget_subject, idempotency_key="pg-same", request_body_sha256="a" * 64), 6)
    assert RemovalTicket.objects.filter(idempotency_key="pg-same").count() == 1
    ticket = RemovalTicket.objects.get(idempotency_key="pg-same")
    created = [r[1][1] for r in results if r[0] == "ok"]
    assert created.count(True) == 1, results
    for kind, value in results:
        if kind == "ok":
            assert value[0].pk == ticket.pk
        else:  # only "still in flight" is an acceptable failure (409 over HTTP)
            assert isinstance(value, services.IdempotencyInFlight), value


def test_same_key_different_bodies_race_never_returns_another_request(users, forget_subject):
    bodies = [f"{i:064x}" for i in range(6)]
    results = _race(lambda i: services.ticket_create(
        requester=users["owner"], subject=forget_subject, idempotency_key="pg-diff",
        request_body_sha256=bodies[i]), 6)
    ticket = RemovalTicket.objects.get(idempotency_key="pg-diff")
    winners = [i for i, r in enumerate(results) if r[0] == "ok"]
    assert len(winners) == 1 and bodies[winners[0]] == ticket.idempotency_body_sha256
    for i, (kind, value) in enumerate(results):
        if i != winners[0]:
            assert kind == "error" and isinstance(value, (services.IdempotencyConflict, services.IdempotencyInFlight))


def test_withdraw_and_claim_race_ends_consistently(users, forget_subject, target_model):
    import redis
    from django.conf import settings

    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    ids = [r.pk for r in selectors.ticket_resolution(ticket=ticket)]
    job = services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2", record_ids=ids)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no worker here: drop the queued task

    def act(i):
        if i == 0:
            return services.ticket_withdraw(ticket=RemovalTicket.objects.get(pk=ticket.pk), actor=users["owner"])
        return services.job_claim(job_id=job.pk, worker="w")

    results = _race(act, 2)
    ticket.refresh_from_db()
    job.refresh_from_db()
    if ticket.status == TicketStatus.WITHDRAWN:
        assert job.status in (JobStatus.CANCELLED, JobStatus.FAILED), (job.status, results)
        assert services.job_claim(job_id=job.pk, worker="w2") is None
    else:  # the claim won: the job runs and the withdrawal was refused with the current status
        assert ticket.status == TicketStatus.RUNNING and job.status == JobStatus.RUNNING
        assert results[0][0] == "error" and isinstance(results[0][1], TransitionError)
    assert UnlearningJob.objects.filter(status=JobStatus.QUEUED).count() == 0
