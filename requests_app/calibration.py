"""Execution of a ``calibration`` preparation job on a worker (issue 15 item 1).

Steps: the calibration request's evaluation manifest (forget = the calibration subjects' records,
holdout = the *calibration* half), its exact-retrain reference (registered one, or trained here
and registered), the original and retrained reports once, then the bounded search of
:func:`evaluation.calibration.calibration_search` where each trial is a real run of the method
evaluated and judged exactly as a request's job is (``jobs.evaluate_artifact`` +
``evaluation.verdicts.compute_verdicts``). The report (JSON + PNG) goes to the artifact store under
``models/<name>/calibrations/<job>``; a passing trial's hyper-parameters become the (model, method)
defaults in the transaction that finishes the job. No trial passing → the job FAILS with the best
trial's figures (the report is still stored).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from django.conf import settings

from . import selectors, services
from .artifacts import artifact_fetch_verified, artifact_store
from .models import PreparationJob, TrainingRecord
from .preparation import PreparationCancelled, _progress_writer, reference_train
from .services.manifests import record_to_example

__all__ = ["calibration_run"]


def _reference_dir(job: PreparationJob, forget_records: list, retain: list, work: Path) -> tuple[Path, int]:
    model, digest = job.model, job.params["forget_set_sha256"]
    ref = selectors.model_reference_version(model, digest)
    if ref is None:
        uri, result = reference_train(model, forget_records, retain, hyperparameters=None,
                                      progress=_progress_writer(job.pk, "retrain"), work=work / "reference",
                                      digest=digest, key_suffix=f"calib-{job.public_id.hex[:8]}")
        ref = services.model_register_reference(actor="system", model=model, artifact_uri=uri,
                                                weights_sha256=result.weights_sha256, forget_set_sha256=digest)
        shutil.rmtree(work / "reference", ignore_errors=True)
    return artifact_fetch_verified(ref.artifact_uri, ref.weights_sha256), ref.pk


def _best_failed(trials: list[dict]) -> str:
    run = [t for t in trials if t.get("verdict")]
    if not run:
        return "no trial produced an evaluated model"
    best = min(run, key=lambda t: (len(t["verdict"]["failed_checks"]), t["estimated_cost"]))
    m = best.get("metrics") or {}
    return (f"best trial {best['index']} {best['hyperparameters']} failed {', '.join(best['verdict']['failed_checks'])} "
            f"(KnowMem_f {m.get('knowmem_forget')}, KnowMem_r {m.get('knowmem_retain')}, PrivLeak {m.get('privleak')})")


def _compact(report: dict) -> dict:
    trials = [{k: v for k, v in t.items() if k != "verdict"} | (
        {"verdict": {"passed": t["verdict"]["passed"], "failed_checks": t["verdict"]["failed_checks"]}}
        if t.get("verdict") else {}) for t in report["trials"]]
    return {**{k: v for k, v in report.items() if k != "trials"}, "trials": trials}


def _search(job: PreparationJob, splits, forget: list, retain: list, kwargs: dict, source, work: Path):
    """Reference, base reports, the search and the stored report; returns (report, result, report uri)."""
    from evaluation.calibration import calibration_search
    from evaluation.calibration_report import (
        calibration_report,
        headline_metrics,
        plot_calibration,
        trial_evaluator,
    )

    from .jobs import evaluate_artifact

    model, p = job.model, job.params
    source_dir = artifact_fetch_verified(source.artifact_uri, source.weights_sha256)
    ref_dir, ref_id = _reference_dir(job, splits.forget, retain, work)
    original, retrained = evaluate_artifact(source_dir, **kwargs), evaluate_artifact(ref_dir, **kwargs)
    base_dir = artifact_fetch_verified(model.base_artifact_uri, model.base_sha256) if model.base_artifact_uri else None
    evaluate = trial_evaluator(
        method=p["method"], request_kwargs={"model_dir": str(source_dir), "forget": forget, "retain": retain,
                                            "base_dir": str(base_dir) if base_dir else None},
        base_overrides=(model.training_recipe or {}).get("methods", {}).get(p["method"], {}),
        evaluate_dir=lambda d: evaluate_artifact(d, **kwargs), original=original, retrained=retrained,
        work_dir=work / "trials", progress=_progress_writer(job.pk, "calibration"))
    result = calibration_search(p["method"], p["plan"], evaluate, max_trials=p["max_trials"],
                                max_seconds=p["max_seconds"], propagate=(PreparationCancelled,))
    report = calibration_report(result, context={
        "model": model.name, "model_weights_sha256": source.weights_sha256, "search_space": p["search_space"],
        "strategy": p["strategy"], "max_trials": p["max_trials"], "max_seconds": p["max_seconds"],
        "calibration_request": {"subjects": p["subject_ids"], "records": len(splits.forget),
                                "forget_set_sha256": p["forget_set_sha256"], "reference_version": ref_id},
        "evaluation_manifest": splits.manifest.summary(),
        "holdout_split": splits.manifest.evaluation_profile["holdout_split"],
        "references": {"original": headline_metrics(original), "retrained": headline_metrics(retrained)}})
    out = work / "report"
    out.mkdir()
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, default=str))
    plot_calibration(report, out / "plot.png")
    uri = artifact_store().put_dir(out, f"models/{model.name}/calibrations/{job.public_id.hex[:12]}")
    return report, result, uri


def calibration_run(job: PreparationJob, started: float) -> None:
    """Run a claimed calibration job to its end (succeed with stored defaults, or fail with the reason).

    Raises ServiceError / UnlearningInputError / ArtifactStoreError (the job fails with the message).
    """
    model, p = job.model, job.params
    forget_records = list(TrainingRecord.objects.filter(pk__in=p["record_ids"]).select_related("subject").order_by("pk"))
    if len(forget_records) != len(p["record_ids"]) or any(r.forgotten_by_id for r in forget_records):
        raise services.ServiceError("records of the calibration request were forgotten or removed since it was queued")
    source = selectors.model_serving_version(model)
    splits = services.evaluation_manifest_prepare(
        model=model, forget_records=forget_records, weights_sha256=source.weights_sha256,
        frozen_forget_ids=p["record_ids"], frozen_forget_sha256=p["forget_set_sha256"], holdout_half="calibration")
    forget = [record_to_example(r) for r in splits.forget]
    retain = [record_to_example(r) for r in splits.retain]
    kwargs = dict(forget=forget, retain=[record_to_example(r) for r in splits.retain_evaluated],
                  holdout=[record_to_example(r) for r in splits.holdout], manifest=splits.manifest)
    work = Path(settings.JOB_WORK_DIR) / f"calib-{job.public_id}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        report, result, uri = _search(job, splits, forget, retain, kwargs, source, work)
    finally:  # also when cancelled or crashed: trial models never stay on the worker's disk
        shutil.rmtree(work, ignore_errors=True)
    summary = {"report_uri": uri, "report": _compact(report)}
    if result.chosen is None:
        services.preparation_fail(job=job, result=summary, reason=(
            f"calibration of '{p['method']}': no trial passed the verdict ({result.stop_reason}); "
            + _best_failed(result.trials)))
        return
    chosen = result.trials[result.chosen]

    def apply(locked):
        services.method_calibration_store(
            model=model, method=p["method"], hyperparameters=result.chosen_hyperparameters, job=locked,
            summary={k: chosen.get(k) for k in ("index", "metrics", "steps", "wall_seconds")}
            | {"report_uri": uri, "calibration_cost": report["calibration_cost"]})
        return {**summary, "chosen_hyperparameters": result.chosen_hyperparameters}

    services.preparation_succeed(job=job, result={}, device_seconds=round(time.monotonic() - started, 3), apply=apply)
