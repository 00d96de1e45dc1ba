"""Execution of one preparation job on a worker (issue 14): claim → work → register or fail.

Kinds: ``corpus_ingest`` (default queue), ``dp_base``, ``reference`` and ``calibration`` (``gpu``
queue; the calibration search is :mod:`requests_app.calibration`). Bad input
ends as a FAILED job with the reason (and, for a corpus, its validation report); what a job
produces is registered in the same transaction as its success, so nothing is half-registered.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from unlearning_engine.errors import UnlearningInputError

from . import services
from .artifacts import ArtifactStoreError, artifact_fetch_verified, artifact_store
from .audit import audit_event_record
from .models import PreparationJob, TargetModel, TrainingRecord
from .progress_log import ProgressLog

logger = logging.getLogger(__name__)


class PreparationCancelled(Exception):
    """The job stopped running (cancelled) while it worked."""


#: Keys of a recipe's ``dp_base`` block passed on to :func:`unlearning_engine.dp.train_dp_base`.
DP_BASE_KEYS = ("target_epsilon", "delta", "max_grad_norm", "epochs", "lr", "batch_size", "sample_rate",
                "accountant", "privacy_unit", "max_records_per_unit", "unit_gradient", "min_units", "lora")


def dp_base_kwargs(dp_recipe: dict) -> dict:
    """The ``train_dp_base`` keyword arguments of a recipe's ``dp_base`` block (unknown keys dropped)."""
    return {k: dp_recipe[k] for k in DP_BASE_KEYS if dp_recipe.get(k) is not None}


def dp_base_train(base_dir, examples: list, out_dir, *, recipe: dict, progress=None, log=lambda msg: None):
    """The ONE call of ``unlearning_engine.dp.train_dp_base`` in the service (DESIGN §6 step 1).

    ``recipe`` is a model's ``training_recipe``: ``dp_base`` holds ``target_epsilon``, ``epochs``,
    ``lr``, ``sample_rate`` (q over privacy units) or ``batch_size`` (expected units per step),
    optional ``privacy_unit`` (``"subject"``, the default, or ``"record"``), ``max_records_per_unit``,
    ``max_grad_norm`` (C), ``delta`` (δ, default 1/(10·N_units)), ``accountant``, ``lora``; ``seed`` at
    the top level. ``examples`` carry their data subject (``Example.subject``): the privacy unit.
    Before training: the tokenizer's provenance is read from the base artifact (a private-corpus or
    unknown tokenizer is refused by the engine) and the physical batch is chosen from the DP memory
    plan (``requests_app.memory``: the recipe's LoRA, privacy unit and records per unit counted;
    refused with the estimate and the budget when even the smallest batch does not fit).

    Returns the engine's ``PrivacyLedger``. Raises ``UnlearningInputError`` (too few units, δ ≥ 1/N,
    tokenizer not public…) or ``ServiceError`` (memory budget).
    """
    from unlearning_engine.dp import DEFAULT_MAX_RECORDS_PER_UNIT, train_dp_base
    from unlearning_engine.modeling import load_artifact
    from unlearning_engine.provenance import read_provenance

    from .memory import dp_physical_batch_plan

    d = recipe["dp_base"]
    provenance = read_provenance(base_dir)
    model, tokenizer = load_artifact(base_dir, device="cpu", with_eco=False)
    unit = d.get("privacy_unit", "subject")
    n_units = len({e.subject for e in examples if e.subject is not None}) + sum(e.subject is None for e in examples)
    n_units = len(examples) if unit == "record" else max(1, n_units)
    units_per_step = d.get("batch_size") or float(d.get("sample_rate") or 0.1) * n_units
    rows_per_step = max(1, round(float(units_per_step) * len(examples) / max(1, n_units)))  # expected rows
    physical = dp_physical_batch_plan(
        model=model, tokenizer=tokenizer, examples=examples, expected_batch=rows_per_step, lora=d.get("lora"),
        privacy_unit=unit, max_records_per_unit=int(d.get("max_records_per_unit") or DEFAULT_MAX_RECORDS_PER_UNIT),
        unit_gradient=d.get("unit_gradient", "aggregate"), log=log)
    del model
    return train_dp_base(base_dir, examples, out_dir, seed=int(recipe.get("seed", 0)), progress=progress,
                         tokenizer_provenance=provenance, max_physical_batch_size=physical, **dp_base_kwargs(d))


def _recipe_with_dp_defaults(model: TargetModel, params: dict) -> dict:
    from unlearning_engine.families.classifier.train import DP_BASE_RECIPE
    from unlearning_engine.modeling import DEMO_RECIPE

    recipe = dict(model.training_recipe or {})
    merged: dict = {}
    defaults = DEMO_RECIPE["dp_base"] if model.family == "causal_lm" else DP_BASE_RECIPE
    for layer in (defaults, recipe.get("dp_base") or {}, params.get("dp_base") or {}):
        if "batch_size" in layer or "sample_rate" in layer:  # one batch rule: a later layer's wins whole
            merged.pop("batch_size", None)
            merged.pop("sample_rate", None)
        merged.update(layer)
    recipe["dp_base"] = merged
    return recipe


def _progress_writer(job_id: int, phase: str):
    last = [0.0]
    line = ProgressLog(f"preparation {job_id}")

    def write(progress) -> None:
        line(progress)
        now = time.monotonic()
        if now - last[0] < 2.0 and progress.step < progress.total:
            return
        last[0] = now
        ok = services.preparation_progress_update(job_id=job_id, progress={
            "phase": getattr(progress, "phase", phase), "step": progress.step, "total": progress.total,
            "loss": round(float(progress.loss), 5), "eta_seconds": round(float(progress.eta_seconds), 1)})
        if not ok:
            raise PreparationCancelled(f"preparation {job_id} is no longer running")

    return write


def _lines_progress(job_id: int):
    def write(lines: int, n_bytes: int) -> None:
        if not services.preparation_progress_update(job_id=job_id, progress={
                "phase": "ingest", "lines": lines, "bytes": n_bytes}):
            raise PreparationCancelled(f"preparation {job_id} is no longer running")

    return write


class _Heartbeat(threading.Thread):
    def __init__(self, job_id: int):
        super().__init__(daemon=True, name=f"prep-heartbeat-{job_id}")
        self.job_id, self.stop = job_id, threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.wait(settings.JOB_HEARTBEAT_INTERVAL):
                services.preparation_heartbeat(job_id=self.job_id)
        finally:
            connection.close()


def preparation_execute(*, job_id: int, worker: str | None = None) -> str:
    """Run preparation ``job_id`` to its end state; returns the final status or "skipped"."""
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    job = services.preparation_claim(job_id=job_id, worker=worker)
    if job is None:
        logger.info("preparation %s already claimed or finished; delivery ignored", job_id)
        return "skipped"
    started = time.monotonic()
    heartbeat = _Heartbeat(job.pk)
    if connection.vendor != "sqlite":
        heartbeat.start()
    try:
        from .calibration import calibration_run

        runner = {PreparationJob.KIND_CORPUS_INGEST: _run_corpus_ingest, PreparationJob.KIND_DP_BASE: _run_dp_base,
                  PreparationJob.KIND_REFERENCE: _run_reference, PreparationJob.KIND_CALIBRATION: calibration_run}[job.kind]
        runner(job, started)
    except PreparationCancelled:
        logger.info("preparation %s stopped: no longer running", job.public_id)
    except (UnlearningInputError, ArtifactStoreError, services.ServiceError) as exc:
        services.preparation_fail(job=job, reason=str(exc))
    except Exception as exc:  # noqa: BLE001 — any crash ends as a FAILED job with its reason
        from .memory import is_out_of_memory, oom_reason

        logger.exception("preparation %s crashed", job.public_id)
        reason = (oom_reason(exc, where=f"preparation '{job.kind}'",
                             batch=((job.params or {}).get("dp_base") or {}).get("batch_size"))
                  if is_out_of_memory(exc) else f"{type(exc).__name__}: {exc}")
        services.preparation_fail(job=job, reason=reason)
    finally:
        heartbeat.stop.set()
        if heartbeat.is_alive():
            heartbeat.join(timeout=5)
    job.refresh_from_db()
    return job.status


def _run_corpus_ingest(job: PreparationJob, started: float) -> None:
    p = job.params
    report = services.corpus_validate(p["source_uri"], progress=_lines_progress(job.pk))
    if not report["valid"]:
        first = report["bad_lines"][0] if report["bad_lines"] else {"line": 0, "error": "invalid"}
        services.preparation_fail(job=job, result={"report": report}, reason=(
            f"{report['errors']} invalid line(s); first: line {first['line']}: {first['error']}"))
        return

    def apply(locked):
        corpus, rep = services.corpus_ingest_apply(name=p["name"], source_uri=p["source_uri"],
                                                   description=p.get("description", ""), actor=job.requested_by,
                                                   report=report)
        if corpus is None:
            raise services.ServiceError("the corpus became invalid between validation and ingestion")
        PreparationJob.objects.filter(pk=locked.pk).update(corpus=corpus)
        return {"report": rep, "corpus": corpus.pk, "corpus_name": corpus.name}

    services.preparation_succeed(job=job, result={}, device_seconds=round(time.monotonic() - started, 3), apply=apply)


def _examples(model: TargetModel, exclude_ids=()) -> tuple[list, list]:
    from .jobs import record_to_example

    qs = TrainingRecord.objects.filter(corpus=model.corpus, split=TrainingRecord.SPLIT_TRAIN,
                                       forgotten_by__isnull=True).exclude(pk__in=list(exclude_ids)).order_by("index")
    records = list(qs)
    return records, [record_to_example(r) for r in records]


def _run_dp_base(job: PreparationJob, started: float) -> None:
    model = job.model
    if not model.base_artifact_uri:
        raise services.ServiceError(f"model '{model.name}' has no registered pre-trained base")
    base_dir = artifact_fetch_verified(model.base_artifact_uri, model.base_sha256)
    records, examples = _examples(model)
    recipe = _recipe_with_dp_defaults(model, job.params)
    work = settings.JOB_WORK_DIR / f"prep-{job.public_id}"
    shutil.rmtree(work, ignore_errors=True)
    if model.family == "causal_lm":
        ledger = dp_base_train(base_dir, examples, work / "dp_base", recipe=recipe,
                               progress=_progress_writer(job.pk, "dp_train"))
    else:  # classifier families (issue 19): same mechanism and ledger, cross-entropy per example
        from unlearning_engine.families.classifier.dp import train_dp_classifier

        ledger = train_dp_classifier(base_dir, examples, work / "dp_base", seed=int(recipe.get("seed", 0)),
                                     progress=_progress_writer(job.pk, "dp_train"), **dp_base_kwargs(recipe["dp_base"]))
    uri = artifact_store().put_dir(work / "dp_base", f"models/{model.name}/dp_base/{job.public_id.hex[:12]}")
    shutil.rmtree(work, ignore_errors=True)
    ledger_dict = ledger.to_dict()

    def apply(locked):
        before = {"dp_base_sha256": model.dp_base_sha256}
        TargetModel.objects.filter(pk=model.pk).update(
            dp_base_artifact_uri=uri, dp_base_sha256=ledger.weights_sha256, privacy_ledger=ledger_dict,
            training_recipe={**(model.training_recipe or {}), "dp_base": recipe["dp_base"]})
        audit_event_record(actor="system", verb="model.dp_base_registered", obj=model, before=before,
                           after={"dp_base_sha256": ledger.weights_sha256, "uri": uri, "privacy_ledger": ledger_dict,
                                  "preparation": str(locked.public_id)})
        return {"dp_base_uri": uri, "dp_base_sha256": ledger.weights_sha256, "privacy_ledger": ledger_dict,
                "records": len(records)}

    services.preparation_succeed(job=job, result={}, device_seconds=round(time.monotonic() - started, 3), apply=apply)


def reference_train(model: TargetModel, forget_records: list, retain: list, *, hyperparameters: dict | None,
                    progress, work: Path, digest: str, key_suffix: str, seed: int = 0):
    """Train the exact-retrain reference of ``forget_records`` (``retrain`` from the pre-trained base
    on ``retain``, the model's recipe ← ``hyperparameters``, training seed ``seed``) and store it;
    returns (uri, result). Shared by the ``reference`` and ``calibration`` preparations."""
    from unlearning_engine import UnlearningRequest, run_unlearning

    from .jobs import record_to_example
    from .selectors import model_serving_version

    source = model_serving_version(model)
    source_dir = artifact_fetch_verified(source.artifact_uri, source.weights_sha256)
    base_dir = artifact_fetch_verified(model.base_artifact_uri, model.base_sha256)
    result = run_unlearning(UnlearningRequest(
        method="retrain", family=model.family, model_dir=str(source_dir), output_dir=str(work / "model"),
        forget=[record_to_example(r) for r in forget_records], retain=retain, base_dir=str(base_dir),
        hyperparameters={**(model.training_recipe or {}).get("methods", {}).get("retrain", {}),
                         **(hyperparameters or {})},
        seed=seed, progress=progress))
    name = f"{digest[:16]}-{key_suffix}" + (f"-seed{seed}" if seed else "")
    uri = artifact_store().put_dir(work / "model", f"models/{model.name}/references/{name}")
    return uri, result


def _run_reference(job: PreparationJob, started: float) -> None:
    model, p = job.model, job.params
    forget_records = list(TrainingRecord.objects.filter(pk__in=p["record_ids"]).order_by("pk"))
    if not forget_records or any(not r.has_content for r in forget_records):
        raise services.ServiceError("the forget set is empty or its text was purged")
    _, retain = _examples(model, exclude_ids=p["record_ids"])
    work = Path(settings.JOB_WORK_DIR) / f"prep-{job.public_id}"
    shutil.rmtree(work, ignore_errors=True)
    digest = p["forget_set_sha256"]
    trained = []  # (seed, UnlearningResult, uri): one exact retrain per training seed
    for seed in range(int(p.get("seeds") or 1)):
        shutil.rmtree(work, ignore_errors=True)
        uri, result = reference_train(model, forget_records, retain, hyperparameters=p.get("hyperparameters"),
                                      progress=_progress_writer(job.pk, "retrain" if seed == 0 else f"retrain seed {seed}"),
                                      work=work, digest=digest, key_suffix=job.public_id.hex[:8], seed=seed)
        trained.append((seed, result, uri))
    shutil.rmtree(work, ignore_errors=True)

    def apply(locked):
        versions = [services.model_register_reference(actor="system", model=model, artifact_uri=uri,
                                                      weights_sha256=result.weights_sha256, forget_set_sha256=digest,
                                                      seed=seed)
                    for seed, result, uri in trained]
        first = trained[0][1]
        return {"version": versions[0].pk, "artifact_uri": trained[0][2], "weights_sha256": first.weights_sha256,
                "forget_set_sha256": digest, "forget_count": len(forget_records), "purpose": p.get("purpose"),
                "train_seconds": round(sum(r.wall_seconds for _, r, _ in trained), 3),
                "seeds": [{"seed": seed, "version": v.pk, "weights_sha256": r.weights_sha256,
                           "train_seconds": round(r.wall_seconds, 3)} for (seed, r, _), v in zip(trained, versions, strict=True)]}

    services.preparation_succeed(job=job, result={}, device_seconds=round(time.monotonic() - started, 3), apply=apply)
