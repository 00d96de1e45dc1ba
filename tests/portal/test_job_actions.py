"""Issue 21 item 7: approving in embedded mode no longer runs the job inside the click (the
embedded worker thread runs it), and the staff buttons for hold, release, extend, retry and cancel
call the same services as the API."""
from __future__ import annotations

import threading

import pytest

from requests_app import job_dispatch, services
from requests_app.models import AuditEvent, RemovalTicket, TicketStatus, UnlearningJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def held_jobs(monkeypatch, settings):
    """Turn the embedded worker on, but keep the jobs it is given (the test runs them)."""
    settings.JOBS_EMBEDDED_BACKGROUND = True
    started = []
    monkeypatch.setattr(job_dispatch, "embedded_thread_start", started.append)
    return started


def _in_review(users, subject):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=subject)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.IDENTITY_VERIFIED,
                                                      identity_verified_at=ticket.received_at)
    return services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])


def test_approve_redirects_before_the_job_runs(client_for, users, forget_subject, target_model, held_jobs,
                                               django_capture_on_commit_callbacks):
    from requests_app.selectors import ticket_resolution

    ticket = _in_review(users, forget_subject)
    records = [r.pk for r in ticket_resolution(ticket=ticket)]
    with django_capture_on_commit_callbacks(execute=True):
        r = client_for("approver").post(f"/dashboard/requests/{ticket.public_id}/approve/",
                                        {"method": "dp2", "records": records})
    job = UnlearningJob.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/dashboard/jobs/{job.public_id}/"
    assert held_jobs == [job.pk] and job.status == "queued"  # not run in the request
    page = client_for("approver").get(r["Location"]).content.decode()
    assert 'data-final="false"' in page and 'id="cancel-job"' in page
    job_dispatch.embedded_job_run(job.pk)  # what the embedded worker thread does
    job.refresh_from_db()
    assert job.status in ("succeeded", "failed"), job.error  # the 1-epoch test model may fail its verdict
    page = client_for("approver").get(r["Location"]).content.decode()
    assert 'data-final="true"' in page and "Evaluation of each model" in page and "Reload" not in page
    assert 'id="cancel-job"' not in page
    if job.status == "failed":  # the results page offers the retry at once
        assert f'id="retry-{ticket.public_id}"' in page


def test_api_approval_still_runs_in_the_call(api, users, forget_subject, settings, monkeypatch):
    """Only the portal's clicks go to the embedded worker; the API (and the demo) keep eager Celery."""
    settings.JOBS_EMBEDDED_BACKGROUND = True
    started = []
    monkeypatch.setattr(job_dispatch, "embedded_thread_start", started.append)
    sent = []
    from requests_app import tasks

    monkeypatch.setattr(tasks.job_run_task, "delay", sent.append)
    callback = job_dispatch.job_dispatch_callback(7)
    callback()
    assert sent == [7] and started == []
    with job_dispatch.jobs_off_request():
        callback = job_dispatch.job_dispatch_callback(8)
    callback()  # decided when queued, run after the block (on commit)
    assert started == [8] and sent == [7]


def test_embedded_worker_runs_on_its_own_thread(monkeypatch):
    from requests_app import tasks

    seen = []
    monkeypatch.setattr(tasks.job_run_task, "apply", lambda args: seen.append((args, threading.current_thread().name)))
    thread = job_dispatch.embedded_thread_start(42)
    thread.join(10)
    assert seen == [([42], "embedded-job-42")] and thread.daemon


def test_hold_release_extend_buttons(client_for, users, forget_subject, django_capture_on_commit_callbacks):
    ticket = _in_review(users, forget_subject)
    base = f"/dashboard/requests/{ticket.public_id}/"
    reviewer = client_for("reviewer")
    page = reviewer.get(base).content.decode()
    assert 'id="hold"' in page and 'id="extend"' in page and 'id="release"' not in page
    assert 'id="hold"' not in client_for("auditor").get(base).content.decode()
    assert client_for("auditor").post(base + "hold/", {"hold-reason": "x"}).status_code == 403
    r = reviewer.post(base + "hold/", {"hold-reason": ""})
    assert r.status_code == 400 and "This field is required." in r.content.decode()
    assert reviewer.post(base + "hold/", {"hold-reason": "Litigation hold."}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "on_hold" and ticket.hold_reason == "Litigation hold."
    assert reviewer.post(base + "hold/", {"hold-reason": "again"}).status_code == 409
    assert 'id="release"' in reviewer.get(base).content.decode()
    assert reviewer.post(base + "release/").status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "in_review"
    with django_capture_on_commit_callbacks(execute=True):
        r = reviewer.post(base + "extend/", {"extend-reason": "Many texts to check.", "extend-days": ""})
    assert r.status_code == 302
    ticket.refresh_from_db()
    assert ticket.original_due_at is not None and ticket.extension_reason == "Many texts to check."
    assert ticket.notices.filter(kind="extension").count() == 1
    r = reviewer.post(base + "extend/", {"extend-reason": "Twice."})
    assert r.status_code == 400 and "already extended" in r.content.decode()
    verbs = list(AuditEvent.objects.filter(object_id=str(ticket.public_id)).values_list("verb", flat=True))
    assert verbs[-3:] == ["ticket.on_hold", "ticket.hold_released", "ticket.deadline_extended"]


def test_cancel_and_retry_buttons(client_for, users, forget_subject, target_model, held_jobs, monkeypatch,
                                  django_capture_on_commit_callbacks):
    from requests_app import tasks

    monkeypatch.setattr(tasks.job_run_task, "delay", lambda job_id: None)  # the approved job stays queued
    ticket = _in_review(users, forget_subject)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.ticket_approve(ticket=ticket, approver=users["approver"])
    assert job.status == "queued"
    page = f"/dashboard/jobs/{job.public_id}/"
    assert client_for("reviewer").post(page + "cancel/").status_code == 403
    r = client_for("operator").post(page + "cancel/", {"reason": "Wrong model."})
    assert r.status_code == 302
    job.refresh_from_db()
    ticket.refresh_from_db()
    assert job.status == "cancelled" and job.error == "Wrong model." and ticket.status == "failed"
    body = client_for("operator").get(page).content.decode()
    assert f'id="retry-{ticket.public_id}"' in body and 'id="cancel-job"' not in body
    with django_capture_on_commit_callbacks(execute=True):
        r = client_for("operator").post(f"/dashboard/requests/{ticket.public_id}/retry/")
    new = UnlearningJob.objects.exclude(pk=job.pk).get()
    assert r.status_code == 302 and r["Location"] == f"/dashboard/jobs/{new.public_id}/"
    assert held_jobs[-1] == new.pk and new.status == "queued"  # the embedded worker, not the click
