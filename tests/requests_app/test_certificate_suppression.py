"""Only weight-changing methods earn an erasure certificate (issue 12 item 5).

Decision tested here: approving or retrying with ``eco`` (``changes_weights=False``) is a 400;
``eco`` runs as a comparison job (never published). A publishing job whose result does not change
the weights anyway (a job created before this rule, or a weight-changing method whose weights
sha256 did not move) ends ``failed`` with the reason, its tickets ``failed`` (retryable), no record
tombstoned, no new serving version, and at most a signed suppression notice.
"""
import json
import re

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from requests_app import services
from requests_app.models import (
    Certificate,
    JobStatus,
    ModelVersion,
    RemovalTicket,
    TicketStatus,
    TrainingRecord,
    UnlearningJob,
)


@pytest.fixture(autouse=True)
def _keys(settings, tmp_path):
    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"


def _in_review(api, subject, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = api("owner").post("/api/v1/tickets/", {"subject_name": subject.display_name}, format="json")
    tid = r.json()["id"]
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    assert api("owner").post(f"/api/v1/tickets/{tid}/verify-identity/", {"code": code}, format="json").status_code == 200
    assert api("reviewer").post(f"/api/v1/tickets/{tid}/review/").status_code == 200
    return tid


def test_approving_eco_for_an_erasure_request_is_400(api, forget_subject, target_model,
                                                     django_capture_on_commit_callbacks):
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    r = api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": "eco"}, format="json")
    assert r.status_code == 400
    assert "does not change the model's weights" in r.json()["detail"] and "comparison job" in r.json()["detail"]
    assert api("owner").get(f"/api/v1/tickets/{tid}/").json()["status"] == "in_review"
    assert UnlearningJob.objects.count() == 0


def test_retry_with_eco_is_400(api, forget_subject, target_model, django_capture_on_commit_callbacks):
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    assert api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2"}, format="json").status_code == 201
    RemovalTicket.objects.filter(public_id=tid).update(status=TicketStatus.FAILED)
    r = api("operator").post(f"/api/v1/tickets/{tid}/retry/", {"method": "eco"}, format="json")
    assert r.status_code == 400 and "does not change the model's weights" in r.json()["detail"]
    assert RemovalTicket.objects.get(public_id=tid).status == TicketStatus.FAILED


def test_eco_publishing_job_ends_without_an_erasure_certificate(api, forget_subject, target_model, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    """An eco job that reached the publisher (created before the approval rule) and whose verdict
    "happens to pass" (forced here) gets a suppression notice, never an erasure certificate."""
    import evaluation.verdicts as verdicts_module
    from requests_app.jobs import job_execute

    real = verdicts_module.compute_verdicts
    monkeypatch.setattr(verdicts_module, "compute_verdicts", lambda *a, **k: {**real(*a, **k), "passed": True})
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    r = api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2"}, format="json")
    job_id = r.json()["id"]
    UnlearningJob.objects.filter(public_id=job_id).update(method="eco", hyperparameters={})  # a legacy eco job
    serving_before = ModelVersion.objects.get(model=target_model, is_serving=True)
    assert job_execute(job_id=UnlearningJob.objects.get(public_id=job_id).pk) == JobStatus.FAILED

    job = api("approver").get(f"/api/v1/jobs/{job_id}/").json()
    assert job["status"] == "failed" and job["certificate"] is None and job["suppression_notice"]
    assert job["error"].startswith("suppression only, not erasure: method 'eco' does not change weights")
    assert job["result"]["changes_weights"] is False
    assert job["produced_version"]["role"] == "candidate"
    assert job["produced_version"]["weights_sha256"] == serving_before.weights_sha256
    ticket = api("owner").get(f"/api/v1/tickets/{tid}/").json()
    assert ticket["status"] == "failed" and "suppression only" in ticket["failure_reason"]
    r = api("owner").get(f"/api/v1/tickets/{tid}/certificate/")
    assert r.status_code == 404 and "no erasure certificate" in r.json()["detail"]
    assert job["suppression_notice"] in r.json()["detail"]
    notice = api("approver").get(f"/api/v1/certificates/{job['suppression_notice']}/").json()
    assert notice["document_type"] == "suppression_notice"
    payload = notice["payload"]
    assert payload["schema"] == "suppression-notice/1" and payload["weights_changed"] is False
    assert payload["erasure_certified"] is False and "still hold the data" in payload["statement"]
    assert "dp_guarantee" not in payload
    doc = {k: notice[k] for k in ("payload", "signature", "key_id", "algorithm", "transparency")}
    check = api(None).post("/api/v1/certificates/verify/", json.dumps(doc), content_type="application/json").json()
    assert check["valid"] is True and check["document_type"] == "suppression_notice"
    assert check["audit_log"]["leaf_index"] == doc["transparency"]["leaf_index"]
    # issue 17: the payload declares the embedded audit-log proof, so stripping it is detected
    stripped = {k: doc[k] for k in ("payload", "signature", "key_id", "algorithm")}
    check = api(None).post("/api/v1/certificates/verify/", json.dumps(stripped), content_type="application/json").json()
    assert check["valid"] is False and "declares an embedded inclusion proof" in check["reason"]
    # nothing published, nothing tombstoned; the ticket can be retried with a weight-changing method
    assert ModelVersion.objects.get(model=target_model, is_serving=True).pk == serving_before.pk
    assert TrainingRecord.objects.filter(forgotten_by__isnull=False).count() == 0
    assert Certificate.objects.filter(document_type=Certificate.ERASURE).count() == 0
    r = api("operator").post(f"/api/v1/tickets/{tid}/retry/", {"method": "dp2"}, format="json")
    assert r.status_code == 201


def test_eco_comparison_job_is_allowed_and_never_certified(api, forget_subject, target_model,
                                                           django_capture_on_commit_callbacks):
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    assert api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2"}, format="json").status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        r = api("operator").post(f"/api/v1/tickets/{tid}/compare/", {"method": "eco"}, format="json")
    assert r.status_code == 201
    job = api("operator").get(f"/api/v1/jobs/{r.json()['id']}/").json()
    assert job["status"] == "succeeded" and job["publish"] is False
    assert job["certificate"] is None and job["suppression_notice"] is None


def _evaluating_job(target_model, corpus, *, method="dp2", changes_weights=True):
    source = ModelVersion.objects.get(model=target_model, is_serving=True)
    job = UnlearningJob.objects.create(model=target_model, source_version=source, method=method,
                                       status=JobStatus.EVALUATING, forget_set_sha256="f" * 64, forget_count=0,
                                       result={"changes_weights": changes_weights, "hyperparameters": {}})
    return job, source


VERDICTS = {"passed": True, "checks": [{"name": "privleak", "value": 1.0, "passed": True, "status": "pass"}]}


def test_weight_changing_method_with_unchanged_sha_gets_no_erasure_certificate(target_model, corpus):
    job, source = _evaluating_job(target_model, corpus)

    def never(**kw):
        raise AssertionError("an erasure certificate must not be built")

    version, cert = services.job_finish(job=job, artifact_uri="file:///x", weights_sha256=source.weights_sha256,
                                        reports={}, verdicts=VERDICTS, device_seconds=1.0,
                                        certificate_builder=never)
    job.refresh_from_db()
    assert cert.document_type == "suppression_notice" and version.role == "candidate"
    assert job.status == JobStatus.FAILED and "equals the source version's" in job.error
    assert cert.payload["reason"].startswith("the weights sha256 after the job equals")


def test_engine_result_must_report_a_weight_change(target_model, corpus):
    job, _ = _evaluating_job(target_model, corpus, changes_weights=False)
    _, cert = services.job_finish(job=job, artifact_uri="file:///x", weights_sha256="e" * 64, reports={},
                                  verdicts=VERDICTS, device_seconds=1.0)
    assert cert.document_type == "suppression_notice"
    assert "did not report a weight change" in UnlearningJob.objects.get(pk=job.pk).error


def test_changed_weights_get_the_erasure_certificate_with_exact_signed_bytes(target_model, corpus):
    from requests_app.certificates import certificate_verify_document

    job, _ = _evaluating_job(target_model, corpus)
    _, cert = services.job_finish(job=job, artifact_uri="file:///x", weights_sha256="e" * 64, reports={},
                                  verdicts={**VERDICTS, "extreme": 3e63, "small": 1e-05}, device_seconds=1.0)
    assert cert.document_type == "erasure_certificate" and cert.payload["weights_changed"] is True
    stored = Certificate.objects.get(pk=cert.pk)  # as read back from the database (jsonb on PostgreSQL)
    assert stored.as_document()["payload"]["verdicts"]["extreme"] == 3e63
    assert certificate_verify_document(stored.as_document()).valid


def test_database_refuses_an_erasure_certificate_for_unchanged_weights(target_model, corpus):
    job, source = _evaluating_job(target_model, corpus)
    same = {"weights_sha256": source.weights_sha256}
    base = dict(job=job, signature="s", key_id="k", issued_at=source.created_at)
    with pytest.raises(IntegrityError), transaction.atomic():
        Certificate.objects.create(document_type="erasure_certificate", **base, payload={
            "schema": "erasure-certificate/1", "version_before": same, "version_after": same})
    with pytest.raises(IntegrityError), transaction.atomic():
        Certificate.objects.create(document_type="erasure_certificate", **base, payload={
            "schema": "suppression-notice/1", "version_before": same, "version_after": {"weights_sha256": "e"}})
    with pytest.raises(IntegrityError), transaction.atomic():
        Certificate.objects.create(document_type="other", **base, payload={"schema": "erasure-certificate/1"})
    ok = Certificate.objects.create(document_type="suppression_notice", **base, payload={
        "schema": "suppression-notice/1", "version_before": same, "version_after": same})
    assert ok.pk


def test_owner_portal_never_shows_a_suppression_notice_as_a_certificate(client, users, forget_subject, target_model):
    job, _ = _evaluating_job(target_model, target_model.corpus, method="eco", changes_weights=False)
    ticket = RemovalTicket.objects.create(requester=users["owner"], subject=forget_subject, target_model=target_model,
                                          status=TicketStatus.EVALUATING, received_at=job.queued_at,
                                          due_at=job.queued_at.replace(year=job.queued_at.year + 1),
                                          resolved_record_ids=[1])
    job.tickets.add(ticket)
    _, cert = services.job_finish(job=job, artifact_uri="file:///x", weights_sha256="e" * 64, reports={},
                                  verdicts=VERDICTS, device_seconds=1.0)
    assert cert.document_type == "suppression_notice"
    client.force_login(users["owner"])
    assert client.get(f"/requests/{ticket.public_id}/certificate.json").status_code == 404
    page = client.get(f"/requests/{ticket.public_id}/").content.decode()
    assert "Your certificate" not in page
