"""Issue 13 item 6: nothing stuck or lost — withdrawal vs queued jobs, unrunnable claims,
idempotency races, purge of closed tickets' evidence, out-of-memory reasons."""
import datetime as dt
import re
import threading

import pytest
from django.core import mail
from django.utils import timezone

from requests_app import jobs as job_runner
from requests_app import selectors, services
from requests_app.models import AuditEvent, JobStatus, RemovalTicket, TicketStatus, UnlearningJob


def _queued_job(users, subject, capture, **create):
    with capture(execute=True):
        ticket, _ = services.ticket_create(requester=users["owner"], subject=subject, **create)
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    job = services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2")  # enqueue not run
    return RemovalTicket.objects.get(pk=ticket.pk), job


def test_withdraw_cancels_the_queued_job_and_the_claim_is_a_noop(api, users, forget_subject, target_model, settings,
                                                                 django_capture_on_commit_callbacks):
    ticket, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)
    r = api("owner").post(f"/api/v1/tickets/{ticket.public_id}/withdraw/")
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and "withdrawn" in job.error
    assert AuditEvent.objects.filter(verb="job.cancelled", object_id=str(job.public_id)).count() == 1
    assert services.job_claim(job_id=job.pk, worker="w") is None
    later = timezone.now() + dt.timedelta(seconds=settings.JOB_QUEUED_RESEND_SECONDS + 60)
    assert services.jobs_requeue_stale(now=later).get("resent", 0) == 0


def test_withdrawing_one_ticket_of_a_batch_detaches_it(users, corpus, forget_subject, target_model,
                                                       django_capture_on_commit_callbacks):
    ticket, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)
    other_subject = corpus.records.exclude(subject=forget_subject).exclude(subject=None).first().subject
    other, _ = services.ticket_create(requester=users["owner"], subject=other_subject)
    ids = list(corpus.records.filter(subject=other_subject).values_list("pk", flat=True))
    RemovalTicket.objects.filter(pk=other.pk).update(status=TicketStatus.QUEUED, resolved_record_ids=ids)
    job.tickets.add(other)
    services.ticket_withdraw(ticket=RemovalTicket.objects.get(pk=other.pk), actor=users["owner"])
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert list(job.tickets.all()) == [ticket] and job.forget_count == 20
    assert job.forget_set_sha256 == ticket.forget_set_sha256


def test_claim_of_a_job_that_can_never_run_fails_it(users, forget_subject, target_model,
                                                    django_capture_on_commit_callbacks):
    ticket, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.WITHDRAWN)  # the old bug's state
    assert services.job_claim(job_id=job.pk, worker="w") is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "cannot run" in job.error
    assert RemovalTicket.objects.get(pk=ticket.pk).status == TicketStatus.WITHDRAWN


def test_claim_whose_ticket_transition_fails_ends_the_job(users, forget_subject, target_model, monkeypatch,
                                                         django_capture_on_commit_callbacks):
    ticket, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.CERTIFIED)
    assert services.job_claim(job_id=job.pk, worker="w") is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "cannot run" in job.error and job.attempts == 0


def test_out_of_memory_gives_an_actionable_reason(users, forget_subject, target_model, monkeypatch,
                                                  django_capture_on_commit_callbacks):
    ticket, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)

    def oom(claimed, started):
        raise MemoryError()

    monkeypatch.setattr(job_runner, "_job_run_claimed", oom)
    assert job_runner.job_execute(job_id=job.pk, worker="w") == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error.startswith("out of memory while running method 'dp2'")
    assert "smaller batch_size" in job.error and "DP_MEMORY_BUDGET_BYTES" in job.error
    assert RemovalTicket.objects.get(pk=ticket.pk).status == TicketStatus.FAILED


def test_idempotency_different_body_is_422(api, forget_subject):
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-422"}
    a = api("owner").post("/api/v1/tickets/", {"subject_name": forget_subject.display_name}, format="json", **headers)
    b = api("owner").post("/api/v1/tickets/", {"subject_name": forget_subject.display_name, "description": "other"},
                          format="json", **headers)
    assert (a.status_code, b.status_code) == (201, 422)
    assert RemovalTicket.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_idempotency_race_in_flight_409_then_original_or_422(users, forget_subject, monkeypatch):
    from requests_app.services import tickets

    entered, release = threading.Event(), threading.Event()
    real = tickets._identity_code_mail  # the last step inside the creating transaction (issue 17)

    def slow_issue(ticket, code):
        entered.set()
        release.wait(10)
        return real(ticket, code)

    monkeypatch.setattr(tickets, "_identity_code_mail", slow_issue)
    out = {}

    def first():
        from django.db import connection
        try:
            out["first"] = services.ticket_create(requester=users["owner"], subject=forget_subject,
                                                  idempotency_key="race-1", request_body_sha256="a" * 64)
        finally:
            connection.close()

    t = threading.Thread(target=first)
    t.start()
    assert entered.wait(10)
    with pytest.raises(services.IdempotencyInFlight):
        services.ticket_create(requester=users["owner"], subject=forget_subject, idempotency_key="race-1",
                               request_body_sha256="a" * 64)
    with pytest.raises(services.IdempotencyInFlight):  # a different body is also in flight: retry later
        services.ticket_create(requester=users["owner"], subject=forget_subject, idempotency_key="race-1",
                               request_body_sha256="b" * 64)
    release.set()
    t.join(10)
    original, created = out["first"]
    assert created
    again, created = services.ticket_create(requester=users["owner"], subject=forget_subject,
                                            idempotency_key="race-1", request_body_sha256="a" * 64)
    assert (again.pk, created) == (original.pk, False)
    with pytest.raises(services.IdempotencyConflict):
        services.ticket_create(requester=users["owner"], subject=forget_subject, idempotency_key="race-1",
                               request_body_sha256="b" * 64)
    assert RemovalTicket.objects.filter(idempotency_key="race-1").count() == 1


def test_in_flight_is_409_over_http(api, forget_subject, users):
    from requests_app.services.idempotency import idempotency_slot

    with idempotency_slot(users["owner"].pk, "busy-1"):
        r = api("owner").post("/api/v1/tickets/", {"subject_name": forget_subject.display_name}, format="json",
                              HTTP_IDEMPOTENCY_KEY="busy-1")
    assert r.status_code == 409 and r["Retry-After"] == "1" and "still being processed" in r.json()["detail"]
    assert RemovalTicket.objects.count() == 0


@pytest.mark.parametrize("close", ["withdraw", "deny"])
def test_evidence_of_withdrawn_and_denied_tickets_is_purged(users, forget_subject, settings, close):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject, evidence_text="my essay")
    fresh, _ = services.ticket_create(requester=users["owner"], subject=forget_subject, evidence_text="another")
    for t in (ticket, fresh):
        if close == "withdraw":
            services.ticket_withdraw(ticket=t, actor=users["owner"])
        else:
            services.ticket_deny(ticket=t, actor=users["approver"], exception_code="art17_3_e", reason="claims")
    later = timezone.now() + dt.timedelta(days=settings.FORGET_TEXT_RETENTION_DAYS + 1)
    assert services.evidence_purge_expired(now=timezone.now()) == 0
    assert services.evidence_purge_expired(now=later) == 2
    ticket.refresh_from_db()
    assert ticket.evidence_ciphertext == "" and ticket.evidence_purged_at is not None
    assert len(ticket.evidence_sha256) == 64
    event = AuditEvent.objects.filter(verb="ticket.evidence_purged", object_id=str(ticket.public_id)).get()
    assert event.after["closed_as"] == ("withdrawn" if close == "withdraw" else "denied")
    assert services.evidence_purge_expired(now=later) == 0  # once


def test_comparison_job_of_withdrawn_ticket_refused(users, forget_subject, target_model,
                                                   django_capture_on_commit_callbacks):
    ticket, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)
    services.ticket_withdraw(ticket=ticket, actor=users["owner"])
    with pytest.raises(services.ServiceError, match="withdrawn"):
        services.job_create_comparison(ticket=RemovalTicket.objects.get(pk=ticket.pk), actor=users["operator"],
                                       method="npo_gd")
    assert selectors.tickets_open().filter(pk=ticket.pk).count() == 0
    assert UnlearningJob.objects.filter(status=JobStatus.QUEUED).count() == 0
