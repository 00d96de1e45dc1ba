"""Trials and report of a calibration search (issue 15 item 1): the real trial evaluator, the JSON
report and its plot. The search itself is :mod:`evaluation.calibration`. No Django.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .calibration import CalibrationResult, TrialOutcome
from .verdicts import compute_verdicts

__all__ = ["SCHEMA", "headline_metrics", "trial_evaluator", "calibration_report", "plot_calibration"]

SCHEMA = "calibration-report/1"
_HEADLINE = ("verbmem_forget", "knowmem_forget", "knowmem_retain", "mink_auc")


def headline_metrics(report: dict | None, verdicts: dict | None = None) -> dict:
    """The numbers a trial is judged on: VerbMem_f, KnowMem_f, KnowMem_r (ROUGE-L F1 × 100),
    Min-K% AUC, PrivLeak (%, with its 95% CI, from ``verdicts``) and the degenerate fraction."""
    out: dict = {}
    metrics = (report or {}).get("metrics") or {}
    for name in _HEADLINE:
        m = metrics.get(name) or {}
        out[name] = m.get("value")
        out[f"{name}_ci95"] = m.get("ci95")
    if verdicts is not None:
        out["privleak"] = verdicts["privleak"]["value"]
        out["privleak_ci95"] = verdicts["privleak"]["ci95"]
        out["privleak_reference_type"] = verdicts["privleak"]["reference_type"]
    out["degenerate_fraction"] = (((report or {}).get("degenerate") or {}).get("all") or {}).get("fraction")
    return out


def trial_evaluator(*, method: str, request_kwargs: dict, base_overrides: dict, evaluate_dir: Callable[[str], dict],
                    original: dict, retrained: dict | None, work_dir: Path, seed: int = 0,
                    progress: Callable | None = None,
                    log: Callable[[str], None] = lambda m: None) -> Callable[[dict, Callable[[], None]], TrialOutcome]:
    """An ``evaluate(hp, check_deadline)`` for :func:`evaluation.calibration.calibration_search`.

    Each trial runs ``run_unlearning`` with ``{**base_overrides, **hp}`` on the calibration
    request (``request_kwargs``: ``model_dir``, ``forget``, ``retain``, ``base_dir``,
    ``dp_base_dir``, ``device``), evaluates the result with ``evaluate_dir(model_dir) -> report``
    (the same evaluation as a real job, on the calibration splits) and judges it with
    :func:`evaluation.verdicts.compute_verdicts` against ``original`` and ``retrained`` (the exact
    retrain of the calibration request). The trial's model directory is deleted afterwards.
    A ``CollapseError`` of the engine is a ``collapsed`` trial.
    """
    from unlearning_engine.errors import CollapseError
    from unlearning_engine.methods import UnlearningRequest, run_unlearning

    counter = [0]

    def evaluate(hp: dict, check_deadline: Callable[[], None]) -> TrialOutcome:
        counter[0] += 1
        out_dir = Path(work_dir) / f"trial-{counter[0]}"
        shutil.rmtree(out_dir, ignore_errors=True)

        def on_progress(p) -> None:
            check_deadline()
            if progress is not None:
                progress(p)

        t0 = time.perf_counter()
        try:
            res = run_unlearning(UnlearningRequest(method=method, output_dir=str(out_dir), seed=seed,
                                                   hyperparameters={**base_overrides, **hp}, progress=on_progress,
                                                   **request_kwargs))
        except CollapseError as exc:
            shutil.rmtree(out_dir, ignore_errors=True)
            return TrialOutcome(status="collapsed", reason=f"collapse: {exc.reason}",
                                wall_seconds=time.perf_counter() - t0)
        check_deadline()
        t1 = time.perf_counter()
        try:
            report = evaluate_dir(str(out_dir))
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        verdicts = compute_verdicts(report, original, retrained, reference_auc=None)
        failed = [c["name"] for c in verdicts["checks"] if not c["passed"]]
        return TrialOutcome(status="passed" if verdicts["passed"] else "failed", verdicts=verdicts,
                            metrics=headline_metrics(report, verdicts), steps=res.steps, tokens=res.tokens,
                            wall_seconds=res.wall_seconds, evaluation_seconds=time.perf_counter() - t1,
                            reason="" if not failed else "failed checks: " + ", ".join(failed))

    return evaluate


def calibration_report(result: CalibrationResult, *, context: dict) -> dict:
    """The JSON report: ``schema``, ``context`` (model, calibration request, manifest summary, holdout
    split, reference metrics) and every trial with its hyper-parameters, metrics, verdict, wall
    seconds and steps, the chosen trial and the stop reason."""
    doc = {"schema": SCHEMA, **context, **result.to_dict()}
    doc["calibration_cost"] = {
        "trial_wall_seconds": round(sum(t.get("wall_seconds") or 0 for t in result.trials), 3),
        "evaluation_seconds": round(sum(t.get("evaluation_seconds") or 0 for t in result.trials), 3),
        "steps": sum(t.get("steps") or 0 for t in result.trials),
        "search_wall_seconds": round(result.wall_seconds, 3)}
    return doc


_COLOURS = {"passed": "tab:green", "failed": "tab:red", "collapsed": "tab:gray", "stopped": "tab:orange",
            "error": "black"}


def plot_calibration(report: dict, path: Path) -> Path:
    """PNG with two panels: KnowMem_f (forget) vs KnowMem_r (utility) per trial, and PrivLeak vs
    the trial's wall seconds; colour = outcome, the chosen trial starred, the verdict thresholds
    (retrained KnowMem_f + 5, 90 % of the original KnowMem_r, |PrivLeak| ≤ 5) dashed."""
    from .runners import _pyplot

    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    run = [t for t in report["trials"] if t.get("metrics")]
    for t in run:
        m, c = t["metrics"], _COLOURS.get(t["status"], "black")
        if m.get("knowmem_forget") is not None and m.get("knowmem_retain") is not None:
            a1.scatter(m["knowmem_forget"], m["knowmem_retain"], color=c, s=30)
            a1.annotate(str(t["index"]), (m["knowmem_forget"], m["knowmem_retain"]), fontsize=7)
        if m.get("privleak") is not None:
            a2.scatter(t.get("wall_seconds") or 0, m["privleak"], color=c, s=30)
            a2.annotate(str(t["index"]), (t.get("wall_seconds") or 0, m["privleak"]), fontsize=7)
    chosen = report.get("chosen")
    if chosen is not None and report["trials"][chosen].get("metrics"):
        m = report["trials"][chosen]["metrics"]
        a1.scatter(m["knowmem_forget"], m["knowmem_retain"], marker="*", s=250, facecolors="none",
                   edgecolors="tab:blue", label=f"chosen (trial {chosen})")
        if m.get("privleak") is not None:
            a2.scatter(report["trials"][chosen].get("wall_seconds") or 0, m["privleak"], marker="*", s=250,
                       facecolors="none", edgecolors="tab:blue")
    ref = (report.get("references") or {})
    if ref.get("retrained", {}).get("knowmem_forget") is not None:
        a1.axvline(ref["retrained"]["knowmem_forget"] + 5, ls="--", color="tab:gray", lw=1,
                   label="retrained KnowMem_f + 5")
    if ref.get("original", {}).get("knowmem_retain") is not None:
        a1.axhline(0.9 * ref["original"]["knowmem_retain"], ls=":", color="tab:gray", lw=1,
                   label="0.9 × original KnowMem_r")
    for y in (-5, 5):
        a2.axhline(y, ls="--", color="tab:gray", lw=1)
    a1.set_xlabel("KnowMem_f (ROUGE-L F1 × 100, lower = more forgotten)")
    a1.set_ylabel("KnowMem_r (utility)")
    a2.set_xlabel("trial wall seconds (training)")
    a2.set_ylabel("PrivLeak (%)")
    a1.set_title(f"{report.get('method')}: {len(run)} trial(s) evaluated")
    a2.set_title(report.get("stop_reason", "")[:60], fontsize=8)
    if a1.get_legend_handles_labels()[0]:
        a1.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
