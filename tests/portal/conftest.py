"""Helpers for the portal tests (Django test client)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.core import mail


def code_from_outbox() -> str:
    return re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)


def link_from_outbox() -> str:
    return re.search(r"https?://\S+/signin/link/\S+/", mail.outbox[-1].body).group(0)


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (never ``playwright install``); skipped without either."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def client_for(users):
    from django.test import Client

    def make(role: str | None, **kwargs) -> Client:
        client = Client(**kwargs)
        if role:
            client.force_login(users[role])
        return client

    return make


@pytest.fixture
def file_request(client_for, django_capture_on_commit_callbacks):
    """File a request through the portal form as ``role``; returns the ticket."""
    from requests_app.models import RemovalTicket

    def file(subject, role: str = "owner", **extra):
        data = {"subject_name": subject.display_name, "scope": "all", "jurisdiction": "GDPR", "legal_ground": "",
                **extra}
        with django_capture_on_commit_callbacks(execute=True):
            r = client_for(role).post("/requests/new/", data)
        assert r.status_code == 302, r.content.decode()[:3000]
        return RemovalTicket.objects.order_by("-id").first()

    return file


@pytest.fixture
def certified_lineage(corpus, forget_subject, users, settings, tmp_path):
    """A model with three published versions (two unlearning jobs with reports) and a certified
    ticket of ``owner``, written directly as rows (no training): for the lineage plot and the
    certificate pages."""
    from datetime import timedelta

    from django.utils import timezone

    from evaluation.certificate import sign_certificate
    from requests_app.certificates import signing_key
    from requests_app.models import (
        Certificate,
        EvaluationReport,
        ModelVersion,
        RemovalTicket,
        TargetModel,
        UnlearningJob,
    )

    settings.CERTIFICATE_SIGNING_KEY_PATH = tmp_path / "keys" / "k.pem"
    model = TargetModel.objects.create(
        name="demo-llama", architecture="LlamaForCausalLM", tokenizer="bpe", corpus=corpus,
        privacy_ledger={"epsilon": 7.9, "delta": 1e-4, "noise_multiplier": 0.61, "sample_rate": 0.03,
                        "steps": 300, "accountant": "rdp"},
    )
    now = timezone.now()
    versions = [ModelVersion.objects.create(model=model, sequence=0, is_serving=False, artifact_uri="file:///v0",
                                            weights_sha256="0" * 64)]
    utility, auc = [62.0, 60.5, 59.8], [0.12, 0.49, 0.51]
    ticket = None
    for n in (1, 2):
        job = UnlearningJob.objects.create(model=model, source_version=versions[-1], method="dp2", status="succeeded",
                                           progress={"phase": "dp2", "step": 40, "total": 40, "eta_seconds": 0},
                                           forget_set_sha256=f"{n}" * 64, forget_count=20)
        v = ModelVersion.objects.create(model=model, sequence=n, is_serving=False, artifact_uri=f"file:///v{n}",
                                        weights_sha256=f"{n}" * 64, parent=versions[-1], produced_by=job)
        ref = 0.5
        for role, mv, i in (("original", versions[-1], n - 1), ("unlearned", v, n)):
            EvaluationReport.objects.create(
                model_version=mv, job=job, role=role, forget_set_sha256=job.forget_set_sha256,
                metrics={"knowmem_retain": {"value": utility[i]}, "mink_auc": {"value": auc[i]},
                         "verbmem_forget": {"value": 10.0}, "knowmem_forget": {"value": 5.0}},
                verdicts={"passed": True, "privleak": {"value": (auc[i] - ref) / ref * 100, "reference": ref},
                          "checks": [{"name": "privleak", "value": (auc[i] - ref) / ref * 100, "threshold": 5,
                                      "comparison": "abs<=", "passed": True, "status": "pass", "detail": ""}]}
                if role == "unlearned" else {},
                passed=True if role == "unlearned" else None,
            )
        versions.append(v)
        if n == 2:
            ticket = RemovalTicket.objects.create(
                requester=users["owner"], subject=forget_subject, target_model=model, status="certified",
                received_at=now - timedelta(days=3), due_at=now + timedelta(days=27),
                resolved_record_ids=list(range(1, 21)),
            )
            job.tickets.add(ticket)
            payload = {
                "certificate_id": "5b0e6f4e-7d43-4a43-9d7e-1f1f0c1f9a01", "schema": "erasure-certificate/1",
                "issued_at": now.isoformat(),
                "issuer": "Erasure Compliance Service (test)",
                "tickets": [{"id": str(ticket.public_id), "jurisdiction": "GDPR", "legal_ground": "art17_1_b",
                             "deadline_met": True}],
                "subjects": [str(forget_subject.public_id)], "model": {"name": model.name},
                "version_before": {"weights_sha256": "1" * 64}, "version_after": {"weights_sha256": "2" * 64},
                "job": {"id": str(job.public_id), "method": "dp2"},
                "forget_set": {"sha256": job.forget_set_sha256, "count": 20},
                "dp_guarantee": {"k_records": 20, "per_subject_epsilon": 158.0, "per_subject_delta": 0.1},
                "verdicts": {"passed": True, "checks": [{"name": "privleak", "value": 2.0, "threshold": 5,
                                                         "comparison": "abs<=", "passed": True, "status": "pass"}]},
                "limitations": ["Membership inference is measured with Min-K% Prob only."],
            }
            doc = sign_certificate(payload, signing_key())
            Certificate.objects.create(public_id=payload["certificate_id"], job=job, payload=doc["payload"],
                                       signature=doc["signature"], key_id=doc["key_id"], issued_at=now)
    ModelVersion.objects.filter(pk=versions[-1].pk).update(is_serving=True)
    return {"model": model, "ticket": ticket, "versions": versions}


@pytest.fixture
def realistic_certificate(certified_lineage):
    """Replace the certified ticket's certificate by one shaped like a real job's: checks with
    16-digit values and 95 % CIs, an inconclusive PrivLeak, a DP statement, the verdict's
    "not verified" list (with the Python dict the evaluation writes into one sentence)."""
    from evaluation.certificate import sign_certificate
    from evaluation.verdicts import BASE_NOT_VERIFIED
    from requests_app.certificates import LIMITATIONS, signing_key
    from requests_app.models import Certificate

    cert = Certificate.objects.get(job__tickets=certified_lineage["ticket"])
    payload = dict(cert.payload)
    payload["verdicts"] = {
        "passed": True,
        "checks": [
            {"name": "verbmem_forget", "value": 11.428571428571429, "ci95": [6.123456789012345, 17.98765432101234],
             "threshold": 15.0, "comparison": "<=", "passed": True, "status": "pass", "detail": "VerbMem_f <= retrain + 5"},
            {"name": "knowmem_forget", "value": 8.333333333333334, "ci95": [3.3333333333333335, 14.166666666666666],
             "threshold": 12.5, "comparison": "<=", "passed": True, "status": "pass", "detail": ""},
            {"name": "knowmem_retain", "value": 59.81234567, "ci95": [55.1, 64.43333333333333], "threshold": 55.8,
             "comparison": ">=", "passed": True, "status": "pass", "detail": ""},
            {"name": "privleak", "value": 7.04, "ci95": [-3.2109876543210985, 17.3], "threshold": 5.0,
             "comparison": "abs<=", "passed": True, "status": "inconclusive", "detail": ""},
            {"name": "no_collapse", "value": 0.025, "ci95": None, "threshold": 0.2, "comparison": "<=",
             "passed": True, "status": "pass", "detail": ""},
        ],
        "not_verified": list(BASE_NOT_VERIFIED) + [
            "PrivLeak is inconclusive at this sample size (n = {'forget': 20, 'holdout': 20}): +7.0 with 95% CI "
            "[-3.2, 17.3] against the band [-5, 5]."],
    }
    payload["dp_guarantee"] = {"claimed": True, "k_records": 20, "per_subject_epsilon": 7.912345678,
                               "per_subject_delta": 1e-6,
                               "statement": "The DP base model is (7.912, 1e-06)-differentially private per data subject."}
    payload["limitations"] = list(LIMITATIONS) + list(payload["verdicts"]["not_verified"])
    doc = sign_certificate(payload, signing_key())
    cert.payload, cert.signature, cert.key_id = doc["payload"], doc["signature"], doc["key_id"]
    cert.save(update_fields=["payload", "signature", "key_id"])
    return {**certified_lineage, "certificate": cert, "document": doc}
