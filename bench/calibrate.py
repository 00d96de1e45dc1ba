"""Calibration of the approximate methods on the demo model (issue 15 items 1 and 4-prep).

For each method (default: gd, kl, npo_gd, npo_kl, task_vector, whp, l1_sparse) the same search the
service runs (``manage.py model_calibrate`` / ``POST /models/{id}/calibrate/``):
:func:`evaluation.calibration.calibration_search` over :func:`evaluation.calibration.default_search_space`
(lr × {0.5, 1, 2}, epochs {⌈e/2⌉, e, 2e}, β / α / γ; task_vector's α ∈ {1, 2, 5} includes MUSE's 5),
cheapest first, capped by ``--max-trials`` and ``--max-seconds`` per method, each trial judged by
:func:`evaluation.verdicts.compute_verdicts` against the exact retrain of the calibration request.

Setup (:func:`evaluation.runners.prepare_setup`, cached under ``OUT/setup-*``): ``--model tiny``
is the demo model (the tiny preset trained from scratch on a TOFU author subset with the demo
recipe); ``--model smollm2`` is SmolLM2-135M-Instruct fine-tuned with LoRA (preset
``smollm2-135m-lora``, for a GPU host). The calibration request forgets ``--k`` authors picked by
:func:`evaluation.calibration.subjects_pick` among the subset's first authors (never the request
candidates 198–199); the holdout (TOFU holdout01) is split by
:func:`evaluation.calibration.holdout_halves` and only the calibration half is used.

    python bench/calibrate.py --model tiny --authors 10 --max-trials 4
    python bench/calibrate.py --model smollm2 --authors 10 --device cuda --max-trials 8

Writes ``OUT/calibrate-<model>.json`` (every trial of every method), one
``OUT/calibrate-<model>-<method>.png`` per method, and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import environment, set_threads  # noqa: E402

METHODS = ["gd", "kl", "npo_gd", "npo_kl", "task_vector", "whp", "l1_sparse"]
#: ``--model`` → runner preset; ``test`` is the unit-test model (for the bench tests only).
MODELS = {"tiny": "tiny", "smollm2": "smollm2-135m-lora", "test": "test"}


def _digest(examples) -> str:
    return hashlib.sha256("".join(sorted(e.record_id for e in examples)).encode()).hexdigest()


def calibration_request(setup, k: int):
    """(calibration authors, forget, retain, holdout calibration half, certification half size)."""
    from evaluation.calibration import holdout_halves, subjects_pick

    pool = {str(a): _digest(setup.records[a]) for a in setup.authors if a not in setup.candidates}
    authors = sorted(int(a) for a in subjects_pick(pool, k))
    forget, retain = setup.split(authors)
    cal, cert = holdout_halves(setup.holdout, key=lambda e: hashlib.sha256(e.record_id.encode()).hexdigest())
    return authors, forget, retain, cal, len(cert)


def _reference(setup, authors, forget, retain, cfg, log) -> str:
    """The exact retrain of the calibration request (cached next to the setup)."""
    from evaluation.runners import _hp
    from unlearning_engine.methods import UnlearningRequest, run_unlearning

    d = setup.dir / f"calibration-retrain-{'-'.join(map(str, authors))}"
    if not (d / "model.safetensors").is_file() and not (d / "config.json").is_file():
        t = time.perf_counter()
        run_unlearning(UnlearningRequest(method="retrain", model_dir=setup.target, output_dir=str(d), forget=forget,
                                         retain=retain, base_dir=setup.base, hyperparameters=_hp(cfg, "retrain"),
                                         seed=cfg.seed, device=cfg.device))
        log(f"[reference] retrain of the calibration request in {time.perf_counter() - t:.1f}s")
    return str(d)


def calibrate_method(method, setup, req, evaluate_dir, original, retrained, cfg, args, out: Path, log) -> dict:
    from evaluation.calibration import calibration_search, default_search_space, trials_plan
    from evaluation.calibration_report import (
        calibration_report,
        headline_metrics,
        plot_calibration,
        trial_evaluator,
    )
    from evaluation.runners import _hp
    from unlearning_engine.methods import get_method

    authors, forget, retain, holdout, n_cert = req
    base_overrides = _hp(cfg, method)
    base = get_method(method).resolve_hyperparameters(base_overrides)
    space = default_search_space(method, base)
    plan = trials_plan(space, strategy=args.strategy, max_trials=args.max_trials, seed=args.seed, base=base)
    evaluate = trial_evaluator(method=method, request_kwargs={"model_dir": setup.target, "forget": forget,
                                                              "retain": retain, "base_dir": setup.base,
                                                              "device": cfg.device},
                               base_overrides=base_overrides, evaluate_dir=evaluate_dir, original=original,
                               retrained=retrained, work_dir=out / "trials", seed=cfg.seed)
    result = calibration_search(method, plan, evaluate, max_trials=args.max_trials, max_seconds=args.max_seconds,
                                base=base, log=log)
    report = calibration_report(result, context={
        "model": args.model, "preset": cfg.preset, "search_space": space, "strategy": args.strategy,
        "calibration_request": {"authors": authors, "records": len(forget), "retain_records": len(retain)},
        "holdout_split": {"calibration_records": len(holdout), "certification_records": n_cert},
        "references": {"original": headline_metrics(original), "retrained": headline_metrics(retrained)}})
    plot_calibration(report, out / f"calibrate-{args.model}-{method}.png")
    return report


def _row(report: dict) -> str:
    def f(x, nd=1):
        return "–" if x is None else f"{x:.{nd}f}"
    c = report.get("chosen")
    t = report["trials"][c] if c is not None else min(
        (t for t in report["trials"] if t.get("verdict")), default=None,
        key=lambda t: (len(t["verdict"]["failed_checks"]), t["estimated_cost"]))
    m = (t or {}).get("metrics") or {}
    cost = report["calibration_cost"]
    verdict = "pass" if c is not None else ("fail: " + ", ".join(t["verdict"]["failed_checks"]) if t else "no trial")
    hp = json.dumps((t or {}).get("hyperparameters"), sort_keys=True) if t else "–"
    return (f"| {report['method']} | {report['trials_run']} | {hp} | {f(m.get('verbmem_forget'))} | "
            f"{f(m.get('knowmem_forget'))} | {f(m.get('knowmem_retain'))} | {f(m.get('privleak'))} | {verdict} | "
            f"{f((t or {}).get('wall_seconds'))} | {f(cost['trial_wall_seconds'] + cost['evaluation_seconds'])} |")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(MODELS), default="tiny")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--authors", type=int, default=10)
    p.add_argument("--k", type=int, default=2, help="calibration authors (2 = the size of TOFU forget01)")
    p.add_argument("--max-trials", type=int, default=4)
    p.add_argument("--max-seconds", type=float, default=600.0, help="per method")
    p.add_argument("--strategy", choices=["grid", "random"], default="grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-collapse-check", action="store_true", help="(the unit-test model is degenerate by design)")
    p.add_argument("--out", default="var/bench/calibrate")
    return p


def run(args, argv=None) -> dict:
    """Calibrate every method of ``args.methods``; writes the JSON and PNGs, prints the table; returns the doc."""
    set_threads(args.threads)
    from evaluation.runners import RunnerConfig, _evaluate, prepare_setup

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = RunnerConfig(out_dir=str(out), preset=MODELS[args.model], authors=args.authors, device=args.device,
                       seed=args.seed, collapse_check=not args.no_collapse_check)
    t0 = time.perf_counter()
    setup = prepare_setup(cfg, 2, log=print)
    req = calibration_request(setup, args.k)
    authors, forget, retain, holdout, _ = req
    print(f"[calibration request] authors {authors}: {len(forget)} forget, {len(retain)} retain, "
          f"{len(holdout)} holdout (calibration half)")
    ref_dir = _reference(setup, authors, forget, retain, cfg, print)

    def evaluate_dir(d: str) -> dict:
        return _evaluate(d, forget, retain, holdout, cfg)
    original, retrained = evaluate_dir(setup.target), evaluate_dir(ref_dir)
    reports = {}
    for method in [m for m in args.methods.split(",") if m]:
        reports[method] = calibrate_method(method, setup, req, evaluate_dir, original, retrained, cfg, args, out,
                                           print)
    doc = {"bench": "calibrate", "command": "python bench/calibrate.py " + " ".join(argv or sys.argv[1:]),
           "model": args.model, "preset": cfg.preset, "setup": setup.info, "environment": environment(),
           "total_seconds": round(time.perf_counter() - t0, 1), "methods": reports}
    path = out / f"calibrate-{args.model}.json"
    path.write_text(json.dumps(doc, indent=1, default=str))
    print("\n| method | trials | chosen (or best) hyper-parameters | VerbMem_f | KnowMem_f | KnowMem_r | PrivLeak | "
          "verdict | trial wall s | calibration cost s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in reports.values():
        print(_row(r))
    print(headline_metrics_line(original, retrained))
    print(f"wrote {path} in {doc['total_seconds']} s")
    doc["json"] = str(path)
    return doc


def main(argv=None) -> int:
    run(build_parser().parse_args(argv), argv)
    return 0


def headline_metrics_line(original: dict, retrained: dict) -> str:
    from evaluation.calibration_report import headline_metrics

    o, r = headline_metrics(original), headline_metrics(retrained)
    return (f"original: KnowMem_f {o['knowmem_forget']:.1f}, KnowMem_r {o['knowmem_retain']:.1f}, Min-K AUC "
            f"{o['mink_auc']:.3f}; retrained: KnowMem_f {r['knowmem_forget']:.1f}, KnowMem_r "
            f"{r['knowmem_retain']:.1f}, Min-K AUC {r['mink_auc']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
