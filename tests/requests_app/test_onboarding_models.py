"""Model onboarding (issue 14): registration checks, versions/ledger API, preparations, dp2 gate, CLI."""
from __future__ import annotations

import copy
import shutil
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from requests_app import selectors, services
from requests_app.artifacts import file_sha256
from requests_app.models import AuditEvent, JobStatus, ModelVersion, PreparationJob, TargetModel
from tests.conftest import TEST_RECIPE

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'store'}"
    settings.JOB_WORK_DIR = tmp_path / "jobs"
    return tmp_path / "store"


def _dir(uri: str) -> Path:
    return Path(urlparse(uri).path)


def _body(art, corpus, **over):
    recipe = copy.deepcopy(TEST_RECIPE)
    body = {"name": "byom", "corpus": corpus.name, "artifact_uri": str(_dir(art["target_uri"])),
            "weights_sha256": art["target_sha256"], "base_artifact_uri": art["base_uri"],
            "base_sha256": art["base_sha256"], "training_recipe": recipe}
    body.update(over)
    return body


def _register(api, art, corpus, **over):
    return api("operator").post("/api/v1/models/", _body(art, corpus, **over), format="json")


def test_register_verifies_and_copies_into_the_store(api, users, trained_artifacts, corpus, store):
    r = _register(api, trained_artifacts, corpus, reference_policy="calibration_only")
    assert r.status_code == 201, r.content
    body = r.json()
    model = TargetModel.objects.get(pk=body["id"])
    assert body["dp2_available"] is False and body["reference_policy"] == "calibration_only"
    v0 = selectors.model_serving_version(model)
    assert v0.sequence == 0 and v0.artifact_uri.startswith(f"file://{store}/models/byom/v0")
    assert v0.weights_sha256 == trained_artifacts["target_sha256"]
    assert model.base_artifact_uri.startswith(f"file://{store}/models/byom/base")
    assert model.architecture == "LlamaForCausalLM" and "384 tokens" in model.tokenizer
    verbs = set(AuditEvent.objects.filter(object_id=str(model.pk)).values_list("verb", flat=True))
    assert {"model.registered", "model.artifacts_verified"} <= verbs
    versions = api("auditor").get(f"/api/v1/models/{model.pk}/versions/").json()
    assert [(v["sequence"], v["is_serving"], v["parent"], v["job"]) for v in versions] == [(0, True, None, None)]
    assert api("auditor").get(f"/api/v1/models/{model.pk}/privacy-ledger/").json()["ledger"] == {}


@pytest.mark.parametrize("role", ["reviewer", "approver", "auditor", "owner"])
def test_only_operators_register(api, users, trained_artifacts, corpus, store, role):
    r = api(role).post("/api/v1/models/", _body(trained_artifacts, corpus), format="json")
    assert r.status_code == 403
    assert not TargetModel.objects.exists()


def test_sha256_mismatch_is_400_and_nothing_registered(api, users, trained_artifacts, corpus, store):
    r = _register(api, trained_artifacts, corpus, weights_sha256="0" * 64)
    assert r.status_code == 400 and "sha256 mismatch" in r.json()["detail"]
    r = _register(api, trained_artifacts, corpus, base_sha256="1" * 64)
    assert r.status_code == 400 and "sha256 mismatch" in r.json()["detail"]
    assert not TargetModel.objects.exists() and not ModelVersion.objects.exists()


def test_weights_that_do_not_load_are_400(api, users, trained_artifacts, corpus, store, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(_dir(trained_artifacts["target_uri"]), bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    r = _register(api, trained_artifacts, corpus, artifact_uri=str(bad),
                  weights_sha256=file_sha256(bad / "model.safetensors"))
    assert r.status_code == 400 and "do not load" in r.json()["detail"]
    assert not TargetModel.objects.exists()


def test_tokenizer_that_does_not_match_the_vocabulary_is_400(api, users, trained_artifacts, corpus, store, tmp_path):
    from transformers import PreTrainedTokenizerFast

    odd = tmp_path / "odd"
    shutil.copytree(_dir(trained_artifacts["target_uri"]), odd)
    tok = PreTrainedTokenizerFast.from_pretrained(str(odd))
    tok.add_tokens([f"<extra{i}>" for i in range(40)])
    tok.save_pretrained(odd)
    r = _register(api, trained_artifacts, corpus, artifact_uri=str(odd))
    assert r.status_code == 400 and "tokenizer does not match" in r.json()["detail"]
    assert "424 tokens" in r.json()["detail"] and "384 rows" in r.json()["detail"]


def test_missing_directory_unknown_corpus_and_taken_name_are_400(api, users, trained_artifacts, corpus, store,
                                                                 target_model):
    assert _register(api, trained_artifacts, corpus, artifact_uri="/nonexistent/dir").status_code == 400
    r = api("operator").post("/api/v1/models/", {**_body(trained_artifacts, corpus), "corpus": "nope"}, format="json")
    assert r.status_code == 400 and "no training corpus 'nope'" in r.json()["detail"]
    r = _register(api, trained_artifacts, corpus, name=target_model.name)
    assert r.status_code == 400 and "already exists" in r.json()["detail"]


def test_only_one_serving_version_per_model_is_a_database_constraint(target_model):
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(model=target_model, artifact_uri="file:///x", weights_sha256="0" * 64,
                                    is_serving=True)


def test_dp2_is_refused_with_the_reason_without_a_dp_base(api, users, trained_artifacts, corpus, store,
                                                         forget_subject):
    model = services.model_register_from_artifact(
        actor="system", name="nodp", corpus=corpus, artifact_uri=trained_artifacts["target_uri"],
        weights_sha256=trained_artifacts["target_sha256"])
    with pytest.raises(services.ServiceError, match="dp2 is not available: model 'nodp' has no DP base"):
        services.model_method_check(model, "dp2")
    with pytest.raises(services.ServiceError, match="retrain is not available"):
        services.model_method_check(model, "retrain")
    services.model_method_check(model, "npo_gd")  # needs neither


def _run_prepare(api, model, django_capture_on_commit_callbacks, **body):
    with django_capture_on_commit_callbacks(execute=True):
        r = api("operator").post(f"/api/v1/models/{model.pk}/prepare/", body, format="json")
    return r


def test_dp_base_preparation_registers_the_base_and_ledger(api, users, trained_artifacts, corpus, store,
                                                          django_capture_on_commit_callbacks):
    model = services.model_register_from_artifact(
        actor="system", name="byom", corpus=corpus, artifact_uri=trained_artifacts["target_uri"],
        weights_sha256=trained_artifacts["target_sha256"], base_artifact_uri=trained_artifacts["base_uri"],
        base_sha256=trained_artifacts["base_sha256"], training_recipe=copy.deepcopy(TEST_RECIPE))
    assert api("approver").post(f"/api/v1/models/{model.pk}/prepare/", {"kind": "dp_base"},
                                format="json").status_code == 403
    r = _run_prepare(api, model, django_capture_on_commit_callbacks, kind="dp_base")
    assert r.status_code == 202, r.content
    job = PreparationJob.objects.get(public_id=r.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 1 and job.progress["phase"] == "dp_train" and job.progress["step"] == job.progress["total"]
    model.refresh_from_db()
    ledger = model.privacy_ledger
    assert ledger["epsilon"] <= ledger["target_epsilon"] == 8.0 and ledger["n_records"] == 80
    assert model.dp_base_sha256 == ledger["weights_sha256"] == job.result["dp_base_sha256"]
    assert file_sha256(_dir(model.dp_base_artifact_uri) / "model.safetensors") == model.dp_base_sha256
    services.model_method_check(model, "dp2")
    got = api("auditor").get(f"/api/v1/models/{model.pk}/privacy-ledger/").json()
    assert got["dp2_available"] is True and got["ledger"]["steps"] == ledger["steps"]
    verbs = list(AuditEvent.objects.values_list("verb", flat=True))
    assert {"preparation.dp_base_requested", "model.dp_base_registered", "preparation.succeeded"} <= set(verbs)


def test_dp_base_checks_before_queueing(api, users, trained_artifacts, corpus, store, django_capture_on_commit_callbacks):
    nobase = services.model_register_from_artifact(
        actor="system", name="nobase", corpus=corpus, artifact_uri=trained_artifacts["target_uri"],
        weights_sha256=trained_artifacts["target_sha256"])
    r = _run_prepare(api, nobase, django_capture_on_commit_callbacks, kind="dp_base")
    assert r.status_code == 400 and "no registered pre-trained base" in r.json()["detail"]
    recipe = copy.deepcopy(TEST_RECIPE)
    recipe["dp_base"]["privacy_unit"] = "subject"
    few = services.model_register_from_artifact(
        actor="system", name="few", corpus=corpus, artifact_uri=trained_artifacts["target_uri"],
        weights_sha256=trained_artifacts["target_sha256"], base_artifact_uri=trained_artifacts["base_uri"],
        base_sha256=trained_artifacts["base_sha256"], training_recipe=recipe)
    r = _run_prepare(api, few, django_capture_on_commit_callbacks, kind="dp_base")
    assert r.status_code == 400 and "at least 20 subjects" in r.json()["detail"] and "has 4" in r.json()["detail"]
    assert not PreparationJob.objects.exists()


def test_dp_base_failure_in_the_engine_is_a_failed_job_with_the_reason(api, users, target_model, store,
                                                                      django_capture_on_commit_callbacks):
    r = _run_prepare(api, target_model, django_capture_on_commit_callbacks, kind="dp_base",
                     dp_base={"batch_size": 500})
    job = PreparationJob.objects.get(public_id=r.json()["id"])
    assert job.status == JobStatus.FAILED and "batch_size (expected units per step) must be in [1, N)" in job.error
    target_model.refresh_from_db()
    assert target_model.dp_base_sha256 == selectors.model_default().dp_base_sha256  # unchanged


def test_reference_policies(api, users, target_model, forget_subject, store, django_capture_on_commit_callbacks):
    sid = str(forget_subject.public_id)
    TargetModel.objects.filter(pk=target_model.pk).update(reference_policy="none")
    r = _run_prepare(api, target_model, django_capture_on_commit_callbacks, kind="reference", subject_id=sid)
    assert r.status_code == 400 and "reference_policy 'none'" in r.json()["detail"]
    TargetModel.objects.filter(pk=target_model.pk).update(reference_policy="calibration_only")
    r = _run_prepare(api, target_model, django_capture_on_commit_callbacks, kind="reference", subject_id=sid)
    assert r.status_code == 400 and "calibration_only" in r.json()["detail"]
    r = _run_prepare(api, target_model, django_capture_on_commit_callbacks, kind="reference", subject_id=sid,
                     purpose="calibration")
    assert r.status_code == 202, r.content
    job = PreparationJob.objects.get(public_id=r.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["forget_count"] == 20 and job.result["purpose"] == "calibration"
    ref = selectors.model_reference_version(target_model, job.params["forget_set_sha256"])
    assert ref is not None and ref.role == "reference" and ref.pk == job.result["version"]


def test_claim_is_exactly_once_reclaims_stale_and_gives_up(target_model, settings):
    job = PreparationJob.objects.create(kind="dp_base", model=target_model)
    assert services.preparation_claim(job_id=job.pk, worker="w1") is not None
    assert services.preparation_claim(job_id=job.pk, worker="w2") is None  # live duplicate delivery
    PreparationJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    again = services.preparation_claim(job_id=job.pk, worker="w2")
    assert again is not None and again.worker == "w2" and again.attempts == 2
    PreparationJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1),
                                                    attempts=settings.JOB_MAX_ATTEMPTS)
    assert services.preparation_claim(job_id=job.pk, worker="w3") is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "gave up after" in job.error


def test_requeue_stale_and_cancel(target_model, settings, django_capture_on_commit_callbacks):
    job = PreparationJob.objects.create(kind="dp_base", model=target_model, status=JobStatus.RUNNING, attempts=1,
                                        heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.preparations_requeue_stale() == {"requeued": 1, "failed": 0}
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    services.preparation_cancel(job=job, actor="operator")
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert services.preparation_claim(job_id=job.pk, worker="w") is None


def test_cli_onboards_a_corpus_and_a_model(trained_artifacts, store, tmp_path, capsys,
                                           django_capture_on_commit_callbacks):
    import json

    from requests_app.ingestion import read_jsonl
    from tests.conftest import FIXTURE

    rows = read_jsonl(FIXTURE / "train.jsonl")[:80]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({**r, "subject_id": f"a{i // 20}"}) + "\n" for i, r in enumerate(rows)))
    call_command("corpus_ingest", str(path), "--name", "cli-corpus", "--dry-run")
    assert '"valid": true' in capsys.readouterr().out
    with django_capture_on_commit_callbacks(execute=True):
        call_command("corpus_ingest", str(path), "--name", "cli-corpus", "--no-wait")
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(TEST_RECIPE))
    call_command("model_register", "--name", "cli-model", "--corpus", "cli-corpus",
                 "--artifact", str(_dir(trained_artifacts["target_uri"])), "--sha256", trained_artifacts["target_sha256"],
                 "--base", trained_artifacts["base_uri"], "--base-sha256", trained_artifacts["base_sha256"],
                 "--recipe", str(recipe))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("model_prepare", "cli-model", "dp_base", "--no-wait")
    from requests_app.management.commands._onboarding import wait_for_preparation

    wait_for_preparation(PreparationJob.objects.get(kind="dp_base"), timeout=5, write=print)
    out = capsys.readouterr().out
    assert "succeeded" in out
    model = TargetModel.objects.get(name="cli-model")
    assert model.corpus.records.count() == 80 and model.corpus.records.values("subject").distinct().count() == 4
    assert model.privacy_ledger["epsilon"] <= 8.0


def test_dashboard_pages_for_models_and_preparations(client, users, target_model):
    job = PreparationJob.objects.create(kind="dp_base", model=target_model, error="boom", status=JobStatus.FAILED)
    client.force_login(users["operator"])
    assert client.get("/dashboard/preparations/").status_code == 200
    page = client.get(f"/dashboard/preparations/{job.public_id}/")
    assert page.status_code == 200 and b"boom" in page.content
    assert client.get(f"/dashboard/preparations/?model={target_model.pk}").status_code == 200
    assert b"Preparation jobs" in client.get("/dashboard/models/").content
    client.force_login(users["owner"])
    assert client.get("/dashboard/preparations/").status_code == 403


def test_operator_endpoints_never_answer_5xx_to_fuzzed_input(users, store):
    """schemathesis on the onboarding operations with an ML operator's token (writes allowed)."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from rest_framework.authtoken.models import Token

    from requests_app.wsgi import application

    token = Token.objects.get_or_create(user=users["operator"])[0].key
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application).include(
        path_regex="^/api/v1/(corpora|models|preparations)")
    failures = []
    for op in schema.get_all_operations():
        operation = op.ok()

        @given(case=operation.as_strategy())
        @hsettings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case):
            response = case.call(headers={"Authorization": f"Token {token}"})
            if response.status_code >= 500:
                failures.append((case.method, case.path, response.status_code, response.text[:300]))

        check()
    assert not failures, failures
