"""``POST /api/v1/jobs/{id}/cancel/``: ML operators and legal approvers; 409 on a finished job."""
import re

import pytest
from django.core import mail

from requests_app import selectors, services
from requests_app.models import AuditEvent, JobStatus, TicketStatus, UnlearningJob


def _queued_job(users, subject, capture):
    """An approved ticket whose job stays queued (the approval's on_commit enqueue is not run)."""
    with capture(execute=True):  # the identity-code e-mail
        ticket, _ = services.ticket_create(requester=users["owner"], subject=subject)
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    ids = [r.pk for r in selectors.ticket_resolution(ticket=ticket)]
    job = services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2", record_ids=ids)
    return ticket, job


@pytest.mark.parametrize("role", ["owner", "other_owner", "reviewer", "auditor", None])
def test_cancel_refused_for_other_roles(api, users, forget_subject, target_model, role,
                                        django_capture_on_commit_callbacks):
    _, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)
    r = api(role).post(f"/api/v1/jobs/{job.public_id}/cancel/", {}, format="json")
    assert r.status_code == (401 if role is None else 403), r.content
    assert UnlearningJob.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_operator_and_approver_cancel_then_409_on_finished(api, users, forget_subject, target_model,
                                                          django_capture_on_commit_callbacks):
    ticket, job = _queued_job(users, forget_subject, django_capture_on_commit_callbacks)
    url = f"/api/v1/jobs/{job.public_id}/cancel/"

    r = api("operator").post(url, {"reason": "wrong forget set"}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["id"] == str(job.public_id)
    assert body["status"] == "cancelled"
    assert body["error"] == "wrong forget set"
    assert body["finished_at"] is not None
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.FAILED and ticket.failure_reason == "wrong forget set"
    event = AuditEvent.objects.filter(verb="job.cancelled", object_id=str(job.public_id)).get()
    assert event.actor == f"user:{users['operator'].pk}:operator"
    assert event.before == {"status": "queued"}
    assert event.after == {"status": "cancelled", "reason": "wrong forget set"}

    # cancelling again: 409 with the current status, nothing written
    events = AuditEvent.objects.count()
    r = api("approver").post(url, {}, format="json")
    assert r.status_code == 409
    assert r.json()["current_status"] == "cancelled"
    assert AuditEvent.objects.count() == events

    # the failed ticket is retried; a legal approver cancels the new job (default reason)
    retry = services.ticket_retry(ticket=ticket, actor=users["operator"])
    r = api("approver").post(f"/api/v1/jobs/{retry.public_id}/cancel/", format="json")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "cancelled" and r.json()["error"] == "cancelled by approver"
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.FAILED

    # a job that already ended (succeeded) cannot be cancelled: 409 "succeeded", unchanged
    UnlearningJob.objects.filter(pk=retry.pk).update(status=JobStatus.SUCCEEDED, error="")
    r = api("operator").post(f"/api/v1/jobs/{retry.public_id}/cancel/", {}, format="json")
    assert r.status_code == 409
    assert r.json() == {"detail": "job is 'succeeded'", "current_status": "succeeded"}
    assert UnlearningJob.objects.get(pk=retry.pk).status == JobStatus.SUCCEEDED


def test_cancel_unknown_job_is_404(api, users, db):
    r = api("operator").post("/api/v1/jobs/00000000-0000-0000-0000-000000000000/cancel/", {}, format="json")
    assert r.status_code == 404
