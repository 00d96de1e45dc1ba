"""Issue 23 item 1 on the service side: the evaluation manifest is validated before any job (400) or
before any training (FAILED job with the reason); reports and the certificate carry its digest."""
import json
import re

import pytest
from django.core import mail

from evaluation.manifest import EvaluationManifest
from requests_app import jobs as job_runner
from requests_app import services
from requests_app.ingestion import record_sha256
from requests_app.models import (
    Certificate,
    EvaluationReport,
    JobStatus,
    RemovalTicket,
    TicketStatus,
    TrainingCorpus,
    TrainingRecord,
    UnlearningJob,
)


def _in_review(api, subject, capture):
    with capture(execute=True):
        r = api("owner").post("/api/v1/tickets/", {"subject_name": subject.display_name}, format="json")
    tid = r.json()["id"]
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    api("owner").post(f"/api/v1/tickets/{tid}/verify-identity/", {"code": code}, format="json")
    api("reviewer").post(f"/api/v1/tickets/{tid}/review/")
    return tid


def _approve(api, tid):
    return api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2"}, format="json")


def _set_text(record, question, answer):
    TrainingRecord.objects.filter(pk=record.pk).update(
        question=question, answer=answer, sha256=record_sha256(question=question, answer=answer))


def _no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("training must not start")

    monkeypatch.setattr(job_runner, "run_unlearning", refuse)


def test_approval_refuses_a_holdout_drawn_from_the_training_corpus(api, corpus, forget_subject, target_model,
                                                                   django_capture_on_commit_callbacks):
    trained = corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN).exclude(subject=forget_subject).first()
    holdout = corpus.records.filter(split=TrainingRecord.SPLIT_HOLDOUT).order_by("index").first()
    _set_text(holdout, trained.question.upper(), "  " + trained.answer)  # re-typed copy of a trained record
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    r = _approve(api, tid)
    assert r.status_code == 400
    assert r.json()["detail"] == (
        "evaluation manifest refused: the holdout split is drawn from the training corpus: 1 holdout record(s) "
        f"have the text of a training record ({holdout.pk}); holdout records must never have been trained on")
    assert UnlearningJob.objects.count() == 0
    assert RemovalTicket.objects.get(public_id=tid).status == TicketStatus.IN_REVIEW


def test_approval_refuses_the_same_text_under_another_id(api, corpus, forget_subject, target_model,
                                                         django_capture_on_commit_callbacks):
    forget = corpus.records.filter(subject=forget_subject).order_by("pk").first()
    retain = corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN).exclude(subject=forget_subject).first()
    _set_text(retain, forget.question.replace(" ", "  "), forget.answer.lower())
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    r = _approve(api, tid)
    assert r.status_code == 400
    assert "the forget and retain" in r.json()["detail"]
    assert "with the same text as a forget record under another id" in r.json()["detail"]
    assert f"({retain.pk})" in r.json()["detail"]
    assert UnlearningJob.objects.count() == 0


def test_approval_refuses_an_empty_retain_split(api, corpus, forget_subject, target_model,
                                                django_capture_on_commit_callbacks):
    elsewhere = TrainingCorpus.objects.create(name="elsewhere", kind="qa", content_sha256="0" * 64)
    corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN).exclude(subject=forget_subject).update(corpus=elsewhere)
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    r = _approve(api, tid)
    assert r.status_code == 400 and r.json()["detail"] == "evaluation manifest refused: the retain split is empty"
    assert UnlearningJob.objects.count() == 0


def test_job_fails_before_training_when_the_forget_set_no_longer_matches_the_frozen_resolution(
        api, corpus, forget_subject, target_model, monkeypatch, django_capture_on_commit_callbacks):
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    r = _approve(api, tid)  # queued, not run (callbacks not executed)
    assert r.status_code == 201
    job = UnlearningJob.objects.get(public_id=r.json()["id"])
    record = corpus.records.filter(subject=forget_subject).order_by("pk").first()
    _set_text(record, record.question, record.answer + " (edited after approval)")
    _no_training(monkeypatch)
    assert job_runner.job_execute(job_id=job.pk, worker="w") == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error.startswith("evaluation manifest refused: the forget-set digest ")
    assert "differs from the one frozen at approval" in job.error
    assert RemovalTicket.objects.get(public_id=tid).status == TicketStatus.FAILED


def test_job_fails_before_training_when_a_frozen_record_is_gone(api, corpus, forget_subject, target_model,
                                                                monkeypatch, django_capture_on_commit_callbacks):
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    job = UnlearningJob.objects.get(public_id=_approve(api, tid).json()["id"])
    ticket = RemovalTicket.objects.get(public_id=tid)
    gone = max(ticket.resolved_record_ids) + 10_000
    RemovalTicket.objects.filter(pk=ticket.pk).update(resolved_record_ids=ticket.resolved_record_ids + [gone])
    _no_training(monkeypatch)
    assert job_runner.job_execute(job_id=job.pk, worker="w") == JobStatus.FAILED
    job.refresh_from_db()
    assert (f"the forget split does not match the frozen resolution of the tickets: frozen records missing from "
            f"it ({gone})") in job.error


def test_job_fails_before_training_when_the_holdout_became_training_data(
        api, corpus, forget_subject, target_model, monkeypatch, django_capture_on_commit_callbacks):
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    job = UnlearningJob.objects.get(public_id=_approve(api, tid).json()["id"])
    holdout = corpus.records.filter(split=TrainingRecord.SPLIT_HOLDOUT).first()
    TrainingRecord.objects.create(corpus=corpus, split=TrainingRecord.SPLIT_TRAIN, index=9999,
                                  question=holdout.question, answer=holdout.answer, sha256=holdout.sha256)
    _no_training(monkeypatch)
    assert job_runner.job_execute(job_id=job.pk, worker="w") == JobStatus.FAILED
    assert "holdout split is drawn from the training corpus" in UnlearningJob.objects.get(pk=job.pk).error


def test_retry_and_comparison_are_refused_with_400(api, corpus, forget_subject, target_model,
                                                   django_capture_on_commit_callbacks):
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    assert _approve(api, tid).status_code == 201
    RemovalTicket.objects.filter(public_id=tid).update(status=TicketStatus.FAILED)
    elsewhere = TrainingCorpus.objects.create(name="elsewhere", kind="qa", content_sha256="0" * 64)
    corpus.records.filter(split=TrainingRecord.SPLIT_HOLDOUT).update(corpus=elsewhere)
    jobs = UnlearningJob.objects.count()
    r = api("operator").post(f"/api/v1/tickets/{tid}/retry/", {"method": "dp2"}, format="json")
    assert r.status_code == 400 and "the holdout split is empty" in r.json()["detail"]
    r = api("operator").post(f"/api/v1/tickets/{tid}/compare/", {"method": "ga"}, format="json")
    assert r.status_code == 400 and "the holdout split is empty" in r.json()["detail"]
    assert UnlearningJob.objects.count() == jobs


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reports_and_certificate_carry_the_manifest_digest(api, forget_subject, target_model, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    import evaluation.verdicts as verdicts_module
    from requests_app.certificates import certificate_verify_document

    real = verdicts_module.compute_verdicts
    monkeypatch.setattr(verdicts_module, "compute_verdicts", lambda *a, **k: {**real(*a, **k), "passed": True})
    tid = _in_review(api, forget_subject, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        r = _approve(api, tid)
    job = UnlearningJob.objects.get(public_id=r.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    manifest = EvaluationManifest.from_dict(job.result["evaluation_manifest"])
    # issue 15: a request is certified on the certification half of the 40 holdout records
    assert {k: len(v) for k, v in manifest.splits.items()} == {"forget": 20, "retain": 40, "holdout": 20}
    assert manifest.evaluation_profile["holdout_split"]["half"] == "certification"
    assert manifest.model_weights_sha256 == job.source_version.weights_sha256
    assert manifest.forget_set_sha256 == job.forget_set_sha256
    assert manifest.dataset_sha256 == target_model.corpus.content_sha256
    reports = EvaluationReport.objects.filter(job=job)
    assert reports.count() >= 2 and set(reports.values_list("manifest_sha256", flat=True)) == {manifest.sha256}
    cert = Certificate.objects.get(job=job)
    block = cert.payload["evaluation_manifest"]
    assert block["sha256"] == manifest.sha256
    assert block["splits"]["forget"]["count"] == 20 and block["forget_set_sha256"] == job.forget_set_sha256
    assert block["holdout_split"]["half"] == "certification" and block["splits"]["holdout"]["count"] == 20
    doc = {"payload": cert.payload, "signature": cert.signature, "key_id": cert.key_id, "algorithm": cert.algorithm,
           "transparency": cert.transparency}  # the audit-log proof the payload declares (issue 17)
    assert certificate_verify_document(doc).valid
    text = json.dumps({**doc, "payload": json.loads(cert.signed_payload)})  # the strict parser reads it back
    assert certificate_verify_document(text).valid
    tampered = {**doc, "payload": {**cert.payload, "evaluation_manifest": {**block, "sha256": "0" * 64}}}
    assert certificate_verify_document(tampered).reason == "bad signature"
    api_reports = api("approver").get(f"/api/v1/jobs/{job.public_id}/").json()["reports"]
    assert {rep["manifest_sha256"] for rep in api_reports} == {manifest.sha256}
    # the data owner sees the digest, not the manifest's record ids of other people
    owner = api("owner").get(f"/api/v1/tickets/{tid}/certificate/").json()
    assert owner["payload"]["evaluation_manifest"]["sha256"] == manifest.sha256
    from requests_app.api.serializers import JobSerializer

    owner_view = JobSerializer(job, context={}).data
    assert owner_view["result"]["evaluation_manifest"] is None
    assert {rep["manifest_sha256"] for rep in owner_view["reports"]} == {manifest.sha256}
    from evaluation.certificate_html import render_certificate_html

    assert manifest.sha256 in render_certificate_html(doc)


def test_no_certificate_from_reports_of_another_manifest(forget_subject, target_model, users,
                                                         django_capture_on_commit_callbacks):
    from requests_app.certificates import evaluation_manifest_summary

    job = UnlearningJob(result={"evaluation_manifest": EvaluationManifest(
        splits={}, dataset_sha256="d", model_weights_sha256="w").to_dict()})
    good = EvaluationManifest(splits={}, dataset_sha256="d", model_weights_sha256="w").sha256
    assert evaluation_manifest_summary(job, {"unlearned": (None, {"manifest_sha256": good})})["sha256"] == good
    with pytest.raises(services.ServiceError, match="the original report"):
        evaluation_manifest_summary(job, {"unlearned": (None, {"manifest_sha256": good}),
                                          "original": (None, {"manifest_sha256": "x"})})
    assert evaluation_manifest_summary(UnlearningJob(result={}), {}) is None
