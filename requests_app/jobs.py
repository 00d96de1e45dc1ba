"""Execution of one unlearning job on a worker: claim → unlearn → evaluate → publish or fail.

The task body (DESIGN §9): claims with a compare-and-set (a duplicate delivery is a no-op), calls
``unlearning_engine`` and ``evaluation`` (pure libraries), and records every outcome through
services. Bad input ends as a FAILED job with the reason, never as a lost ticket.
"""
from __future__ import annotations

import contextvars
import logging
import os
import shutil
import socket
import threading
import time

from django.conf import settings
from django.db import connection

from unlearning_engine import UnlearningRequest, run_unlearning
from unlearning_engine.errors import UnlearningInputError

from . import selectors, services
from .artifacts import ArtifactStoreError, artifact_fetch_verified, artifact_store
from .certificates import certificate_build
from .logging import log_context
from .progress_log import ProgressLog
from .services.manifests import record_to_example, retain_sample  # noqa: F401 (re-exported: callers import them here)

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The job was cancelled by an operator while it ran."""


def _progress_writer(job_id: int):
    last = [0.0]
    line = ProgressLog(f"job {job_id}")

    def write(progress) -> None:
        line(progress)
        now = time.monotonic()
        if now - last[0] < 2.0 and progress.step < progress.total:
            return
        last[0] = now
        services.job_progress_update(job_id=job_id, progress={
            "phase": progress.phase, "step": progress.step, "total": progress.total,
            "loss": round(float(progress.loss), 5), "tokens_per_s": round(float(progress.tokens_per_s), 1),
            "eta_seconds": round(float(progress.eta_seconds), 1),
        })
        if not services.job_heartbeat(job_id=job_id):
            raise JobCancelled(f"job {job_id} was cancelled")

    return write


class _Heartbeat(threading.Thread):
    """Background heartbeat (every ``JOB_HEARTBEAT_INTERVAL`` s) while the job runs, also during
    evaluation when no training progress is reported."""

    def __init__(self, job_id: int):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id = job_id
        self.stop = threading.Event()
        self._context = contextvars.copy_context()  # its log records carry the job's ids too

    def run(self) -> None:
        self._context.run(self._beat)

    def _beat(self) -> None:
        from django.db import connection

        try:
            while not self.stop.wait(settings.JOB_HEARTBEAT_INTERVAL):
                services.job_heartbeat(job_id=self.job_id)
        finally:
            connection.close()


def evaluate_artifact(model_dir, *, forget, retain, holdout, manifest=None, family: str = "causal_lm") -> dict:
    """Evaluation report of the model stored in ``model_dir`` on the splits of ``manifest`` (the
    report then carries ``manifest_sha256``): ``evaluation.report.evaluate_qa_model`` for causal LMs,
    the ``classifier`` profile (``evaluation.profiles.classifier``, holdout = the test set) for the
    classifier families (DESIGN §11)."""
    from evaluation.report import EvaluationProfile, evaluate_qa_model
    from unlearning_engine.modeling import load_artifact

    if family != "causal_lm":
        from evaluation.profiles.classifier import evaluate_classifier
        from unlearning_engine.families.classifier.model import load_classifier

        return evaluate_classifier(load_classifier(model_dir), forget=forget, retain=retain, test=holdout,
                                   manifest=manifest,
                                   bootstrap_resamples=settings.EVALUATION_BOOTSTRAP_RESAMPLES_CLASSIFIER)

    model, tokenizer = load_artifact(model_dir)
    profile = EvaluationProfile.from_settings(max_new_tokens_verbmem=settings.EVALUATION_MAX_NEW_TOKENS)
    return evaluate_qa_model(model, tokenizer, forget=forget, retain=retain, holdout=holdout, profile=profile,
                             manifest=manifest)


def job_execute(*, job_id: int, worker: str | None = None) -> str:
    """Run job ``job_id`` to its end state; returns the final status (or "skipped").

    Every log record written meanwhile (this thread and the heartbeat) carries the job's public id
    and its tickets' (``requests_app.logging``).
    """
    from .models import RemovalTicket, UnlearningJob

    public_id = UnlearningJob.objects.filter(pk=job_id).values_list("public_id", flat=True).first()
    tickets = [str(t) for t in RemovalTicket.objects.filter(jobs__pk=job_id).values_list("public_id", flat=True)]
    with log_context(job_id=public_id or job_id, ticket_id=tickets or None):
        return _job_execute(job_id=job_id, worker=worker)


def _job_execute(*, job_id: int, worker: str | None) -> str:
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    job = services.job_claim(job_id=job_id, worker=worker)
    if job is None:
        logger.info("job %s already claimed; duplicate delivery ignored", job_id)
        return "skipped"
    logger.info("job %s claimed by %s (attempt %s, method %s)", job.public_id, worker, job.attempts, job.method)
    started = time.monotonic()
    heartbeat = _Heartbeat(job.pk)
    if connection.vendor != "sqlite":  # embedded mode: one process, and SQLite locks across threads
        heartbeat.start()
    try:
        _job_run_claimed(job, started)
    except JobCancelled:
        logger.info("job %s cancelled while running", job.public_id)
    except (UnlearningInputError, ArtifactStoreError, services.ServiceError) as exc:
        logger.warning("job %s failed: %s", job.public_id, exc)
        services.job_fail(job=job, reason=str(exc))
    except Exception as exc:  # noqa: BLE001 — any crash ends as a FAILED job with its reason
        from .memory import is_out_of_memory, oom_reason

        logger.exception("job %s crashed", job.public_id)
        reason = oom_reason(exc, job=job) if is_out_of_memory(exc) else f"{type(exc).__name__}: {exc}"
        services.job_fail(job=job, reason=reason)
    finally:
        heartbeat.stop.set()
        if heartbeat.is_alive():
            heartbeat.join(timeout=5)
    job.refresh_from_db()
    logger.info("job %s ended %s after %.1f s", job.public_id, job.status, time.monotonic() - started)
    return job.status


def _classifier_ulira(model, job, report: dict, work, *, forget, retain, test, hyperparameters) -> None:
    """Add U-LiRA (``evaluation.profiles.classifier_ulira``) to the unlearned classifier's report:
    ``settings.CLASSIFIER_ULIRA_SHADOWS`` shadow models (0 = not run; the certificate then says so),
    each trained with the model's recipe (``training_recipe["methods"]["retrain"]`` over the family
    default) on D_r plus half the targets and unlearned with the job's method and hyper-parameters."""
    k = int(settings.CLASSIFIER_ULIRA_SHADOWS)
    if k <= 0:
        return
    from evaluation.profiles.classifier_ulira import profile_entry, ulira_metric
    from unlearning_engine.families.classifier.model import load_classifier
    from unlearning_engine.families.classifier.shadows import ShadowPipeline
    from unlearning_engine.families.classifier.train import DEFAULT_RECIPE

    unlearned = load_classifier(work / "model")
    recipe = {**DEFAULT_RECIPE[model.family], **(model.training_recipe or {}).get("methods", {}).get("retrain", {})}
    pipe = ShadowPipeline(unlearned.cfg, work / "ulira", job.method, hyperparameters, recipe=recipe,
                          dp_recipe=(model.training_recipe or {}).get("dp_base"), needs_dp_base=job.method == "dp2")
    try:
        metric = ulira_metric(unlearned, forget=forget, retain=retain, test=test, n_shadows=k, train=pipe.train,
                              unlearn=pipe.unlearn)
    except UnlearningInputError as exc:  # a shadow the method refuses: the check is undefined, the job goes on
        from evaluation.stats import MetricValue

        metric = MetricValue.undefined(f"U-LiRA shadow unlearning failed: {exc}").to_dict()
    report["metrics"]["ulira_accuracy"] = metric
    report["profile"]["ulira"] = profile_entry(k, job.method)
    report["profile"]["metrics"] = [*report["profile"]["metrics"], "ulira_accuracy"]
    shutil.rmtree(work / "ulira", ignore_errors=True)


def _job_run_claimed(job, started: float) -> None:
    model = job.model
    # issue 23: the evaluation manifest is built and validated before any training (ServiceError → FAILED)
    splits = services.job_manifest_prepare(job)
    manifest = splits.manifest
    forget = [record_to_example(r) for r in splits.forget]
    retain = [record_to_example(r) for r in splits.retain]

    source_dir = artifact_fetch_verified(job.source_version.artifact_uri, job.source_version.weights_sha256)
    base_dir = (artifact_fetch_verified(model.base_artifact_uri, model.base_sha256)
                if model.base_artifact_uri else None)
    dp_base_dir = (artifact_fetch_verified(model.dp_base_artifact_uri, model.dp_base_sha256)
                   if model.dp_base_artifact_uri else None)
    recipe = (model.training_recipe or {}).get("methods", {}).get(job.method, {})
    hyperparameters = {**recipe, **(job.hyperparameters or {})}
    work = settings.JOB_WORK_DIR / str(job.public_id)
    if job.attempts <= 1:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)  # a re-claimed job keeps its per-epoch checkpoints
    result = run_unlearning(UnlearningRequest(
        method=job.method, family=model.family, model_dir=str(source_dir), output_dir=str(work / "model"), forget=forget,
        retain=retain, base_dir=str(base_dir) if base_dir else None,
        dp_base_dir=str(dp_base_dir) if dp_base_dir else None, hyperparameters=hyperparameters,
        seed=0, progress=_progress_writer(job.pk), resume=job.attempts > 1,
    ))
    uri = artifact_store().put_dir(work / "model", f"models/{model.name}/jobs/{job.public_id}")
    job = services.job_mark_evaluating(job=job, result={
        "method": result.method, "hyperparameters": result.hyperparameters, "steps": result.steps,
        "tokens": result.tokens, "wall_seconds": round(result.wall_seconds, 3),
        "changes_weights": result.changes_weights, "details": result.details,
        "artifact_uri": uri, "weights_sha256": result.weights_sha256,
        "evaluation_manifest": manifest.to_dict(),
    })

    sample = [record_to_example(r) for r in splits.retain_evaluated]
    holdout = [record_to_example(r) for r in splits.holdout]
    kwargs = dict(forget=forget, retain=sample, holdout=holdout, manifest=manifest, family=model.family)
    reports = {"original": (job.source_version, evaluate_artifact(source_dir, **kwargs))}
    # every exact retrain of this forget set (several training seeds measure the retrain's own
    # variation; evaluation.privleak_reference): "retrained" is the newest, the others "retrained_s<i>"
    for i, reference in enumerate(selectors.model_reference_versions(model, job.forget_set_sha256)):
        ref_dir = artifact_fetch_verified(reference.artifact_uri, reference.weights_sha256)
        reports["retrained" if i == 0 else f"retrained_s{i}"] = (reference, evaluate_artifact(ref_dir, **kwargs))
    reports["unlearned"] = (None, evaluate_artifact(work / "model", **kwargs))

    from evaluation.verdicts import compute_verdicts

    retrained = reports.get("retrained", (None, None))[1]
    if model.family != "causal_lm":  # issue 19: the classifier profile's checks, in the same form
        from evaluation.profiles.classifier_verdicts import compute_classifier_verdicts

        _classifier_ulira(model, job, reports["unlearned"][1], work, forget=forget, retain=retain, test=holdout,
                          hyperparameters=hyperparameters)
        verdicts = compute_classifier_verdicts(reports["unlearned"][1], reports["original"][1], retrained)
        services.job_finish(
            job=job, artifact_uri=uri, weights_sha256=result.weights_sha256, reports=reports, verdicts=verdicts,
            device_seconds=round(time.monotonic() - started, 3), certificate_builder=certificate_build)
        return
    # the retrained report carries its own Min-K% AUC: compute_verdicts takes the PrivLeak reference
    # from it (passing it again as ``reference_auc`` crashed the job when that AUC was 0)
    others = [report for role, (_, report) in reports.items() if role.startswith("retrained_s")]
    verdicts = compute_verdicts(reports["unlearned"][1], reports["original"][1], retrained, reference_auc=None,
                                retrained_others=others)
    services.job_finish(
        job=job, artifact_uri=uri, weights_sha256=result.weights_sha256, reports=reports, verdicts=verdicts,
        device_seconds=round(time.monotonic() - started, 3), certificate_builder=certificate_build,
    )
