"""Operator onboarding end to end (issue 14) on PostgreSQL, Redis, a real worker and moto's S3 server.

Through the API alone: ingest a JSONL corpus from S3, register a tiny model (plain HF directories
in S3), see dp2 refused, prepare its DP base on the worker, then a data owner's request runs dp2.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from requests_app.models import JobStatus, PreparationJob, TargetModel, TicketStatus, UnlearningJob
from tests.conftest import FIXTURE, TEST_AUTHORS, TEST_RECIPE

from .conftest import require_real_stack, wait_for
from .test_faults_infra import MotoServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
BUCKET = "unlearning-artifacts"


@pytest.fixture
def s3(tmp_path, monkeypatch, settings):
    server = MotoServer(tmp_path / "moto.log")
    server.start()
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
             "AWS_ENDPOINT_URL": server.url}
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    settings.ARTIFACT_STORE_URL = f"s3://{BUCKET}/prod"
    settings.ARTIFACT_CACHE_DIR = tmp_path / "cache-web"
    server.creds = creds
    yield server
    server.stop()


def _upload_plain_dir(client, local: Path, prefix: str) -> str:
    for p in sorted(local.iterdir()):
        if p.is_file() and p.name != "MANIFEST.json":
            client.upload_file(str(p), BUCKET, f"{prefix}/{p.name}")
    return f"s3://{BUCKET}/{prefix}"


def _final(model, pk):
    return lambda: model.objects.get(pk=pk).status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def test_operator_onboards_through_the_api_and_dp2_runs(s3, worker_pool, trained_artifacts, api, users, tmp_path,
                                                        settings):
    import boto3
    from django.core import mail

    from requests_app.ingestion import read_jsonl

    require_real_stack()
    client = boto3.client("s3", endpoint_url=s3.url)
    client.create_bucket(Bucket=BUCKET)
    rows = read_jsonl(FIXTURE / "train.jsonl")[: 20 * TEST_AUTHORS]
    holdout = read_jsonl(FIXTURE / "holdout.jsonl")
    lines = [json.dumps({**r, "subject_id": f"author-{i // 20}", "subject_name": f"Author {i // 20}"})
             for i, r in enumerate(rows)]
    lines += [json.dumps({**r, "split": "holdout"}) for r in holdout]
    client.put_object(Bucket=BUCKET, Key="incoming/corpus.jsonl", Body=("\n".join(lines) + "\n").encode())
    target_uri = _upload_plain_dir(client, Path(urlparse(trained_artifacts["target_uri"]).path), "incoming/model")
    base_uri = _upload_plain_dir(client, Path(urlparse(trained_artifacts["base_uri"]).path), "incoming/base")

    worker_pool.env.update({**s3.creds, "ARTIFACT_STORE_URL": settings.ARTIFACT_STORE_URL,
                            "ARTIFACT_CACHE_DIR": str(tmp_path / "cache-worker")})
    worker_pool.start()
    operator = api("operator")

    # an unreachable or missing S3 corpus is a 400 with the reason
    r = operator.post("/api/v1/corpora/", {"name": "c", "source_uri": f"s3://{BUCKET}/nope.jsonl"}, format="json")
    assert r.status_code == 400 and "cannot be read" in r.json()["detail"]

    # 1. corpus from S3, ingested by the worker
    r = operator.post("/api/v1/corpora/", {"name": "onb", "source_uri": f"s3://{BUCKET}/incoming/corpus.jsonl"},
                      format="json")
    assert r.status_code == 202, r.content
    assert r.json()["report"]["train"] == 20 * TEST_AUTHORS and r.json()["report"]["subjects"] == TEST_AUTHORS
    prep = PreparationJob.objects.get(public_id=r.json()["id"])
    assert wait_for(_final(PreparationJob, prep.pk), timeout=120), worker_pool.logs()
    prep.refresh_from_db()
    assert prep.status == JobStatus.SUCCEEDED, prep.error
    assert prep.worker.startswith("test-worker") and prep.attempts == 1
    corpus_id = prep.result["corpus"]

    # 2. model registration from plain HF directories in S3 (sha256 checked; a wrong one is 400)
    body = {"name": "onb-model", "corpus": str(corpus_id), "artifact_uri": target_uri,
            "weights_sha256": trained_artifacts["target_sha256"], "base_artifact_uri": base_uri,
            "base_sha256": trained_artifacts["base_sha256"], "training_recipe": copy.deepcopy(TEST_RECIPE)}
    assert operator.post("/api/v1/models/", {**body, "weights_sha256": "f" * 64}, format="json").status_code == 400
    r = operator.post("/api/v1/models/", body, format="json")
    assert r.status_code == 201, r.content
    model = TargetModel.objects.get(pk=r.json()["id"])
    assert model.versions.get().artifact_uri.startswith(f"s3://{BUCKET}/prod/models/onb-model/v0")

    # 3. a data owner's request: dp2 is refused while the model has no DP base
    owner, reviewer, approver = api("owner"), api("reviewer"), api("approver")
    subject = model.corpus.records.filter(split="train").order_by("-index").first().subject
    ticket = owner.post("/api/v1/tickets/", {"subject_id": str(subject.public_id), "jurisdiction": "GDPR"},
                        format="json").json()
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    assert owner.post(f"/api/v1/tickets/{ticket['id']}/verify-identity/", {"code": code}, format="json").status_code == 200
    assert reviewer.post(f"/api/v1/tickets/{ticket['id']}/review/").status_code == 200
    record_ids = [x["id"] for x in reviewer.get(f"/api/v1/tickets/{ticket['id']}/resolution/").json()]
    assert len(record_ids) == 20
    approve = {"method": "dp2", "record_ids": record_ids, "model": model.name}
    r = approver.post(f"/api/v1/tickets/{ticket['id']}/approve/", approve, format="json")
    assert r.status_code == 400 and "has no DP base" in r.json()["detail"]

    # 4. DP base prepared on the gpu queue by the worker
    r = operator.post(f"/api/v1/models/{model.pk}/prepare/", {"kind": "dp_base"}, format="json")
    assert r.status_code == 202, r.content
    prep = PreparationJob.objects.get(public_id=r.json()["id"])
    assert wait_for(_final(PreparationJob, prep.pk), timeout=300), worker_pool.logs()
    prep.refresh_from_db()
    assert prep.status == JobStatus.SUCCEEDED, prep.error
    ledger = operator.get(f"/api/v1/models/{model.pk}/privacy-ledger/").json()
    assert ledger["dp2_available"] is True and ledger["ledger"]["epsilon"] <= 8.0
    assert ledger["ledger"]["n_records"] == 20 * TEST_AUTHORS

    # 5. now dp2 is accepted and the worker runs it to a verdict
    r = approver.post(f"/api/v1/tickets/{ticket['id']}/approve/", approve, format="json")
    assert r.status_code in (200, 201), r.content
    job = UnlearningJob.objects.get(public_id=r.json()["id"])
    assert wait_for(_final(UnlearningJob, job.pk), timeout=300), worker_pool.logs()
    job.refresh_from_db()
    assert job.worker.startswith("test-worker")
    # the 1-epoch test model may miss the utility floor; infrastructure must never be the reason
    assert job.status == JobStatus.SUCCEEDED or job.error.startswith("evaluation verdict failed"), job.error
    status = owner.get(f"/api/v1/tickets/{ticket['id']}/").json()["status"]
    assert status == (TicketStatus.CERTIFIED if job.status == JobStatus.SUCCEEDED else TicketStatus.FAILED)
