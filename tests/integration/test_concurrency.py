"""Concurrency on PostgreSQL: compare-and-set claims under real parallel transactions."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from requests_app import services
from requests_app.models import AuditEvent, RemovalTicket, TicketStatus, UnlearningJob
from requests_app.workflow import TransitionError

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _run_concurrently(fn, n: int):
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


def test_two_concurrent_approvals_exactly_one_wins(target_model, forget_subject, users, settings):
    import redis

    assert connection.vendor == "postgresql"
    settings.FOUR_EYES_APPROVAL = False
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.IN_REVIEW, identity_verified_at=timezone.now())
    approvers = [users["approver"], users["reviewer"]]

    results = _run_concurrently(
        lambda i: services.ticket_approve(ticket=RemovalTicket.objects.get(pk=ticket.pk), approver=approvers[i],
                                          method="dp2"), 2)
    outcomes = sorted(r[0] for r in results)
    assert outcomes == ["error", "ok"], results
    error = next(r[1] for r in results if r[0] == "error")
    assert isinstance(error, TransitionError)
    assert UnlearningJob.objects.filter(tickets=ticket).count() == 1
    assert AuditEvent.objects.filter(verb="ticket.approved", object_id=str(ticket.public_id)).count() == 1
    assert RemovalTicket.objects.get(pk=ticket.pk).status == TicketStatus.QUEUED
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no worker here: drop the queued task


def test_concurrent_audit_appends_keep_one_chain(db):
    from django.db import transaction

    from requests_app.audit import audit_chain_verify, audit_event_record
    from requests_app.models import DataSubject

    subject = DataSubject.objects.create(display_name="Chain")

    def append(i):
        with transaction.atomic():
            audit_event_record(actor=f"t{i}", verb="test.append", obj=subject)

    results = _run_concurrently(append, 8)
    assert all(r[0] == "ok" for r in results), results
    chain = audit_chain_verify()
    assert chain.valid and chain.checked == AuditEvent.objects.count()
