"""Record-level vs subject-level DP-SGD for the DP base at the same target ε (issue 12 item 1).

On the demo recipe (``unlearning_engine.modeling.DEMO_RECIPE``, "tiny" model) and the bundled TOFU
subset ``requests_app/fixtures/tofu_demo`` (30 fictitious authors × 20 QA; one data subject per
author, rows 20·i … 20·i+19, as ``requests_app.ingestion`` maps them) this trains, per setting,

- a DP base BM (same target ε, same δ, same sample rate q and epochs unless stated), then
- a DP2 model = BM fine-tuned on the retain set (forget = the last author, 20 records) with the
  demo's ``dp2`` recipe,

and reports BM utility (KnowMem_r via ``evaluation.evaluate_qa_model``, retain NLL), DP2 quality
(KnowMem_f, KnowMem_r, retain NLL), the ε each setting actually guarantees *per data subject*
(subject-level: ε itself; record-level: group privacy over the author's 20 records), the accountant
figures, and wall times. A second part times ``unit_gradient="aggregate"`` vs ``"pack"``
(identical setting, a few steps).

    OMP_NUM_THREADS=2 python bench/dp_unit.py --out var/bench/dp_unit

Writes ``OUT/dp_unit.json`` and prints the Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import environment  # noqa: E402

FIXTURE = ROOT / "requests_app" / "fixtures" / "tofu_demo"
ROWS_PER_AUTHOR = 20


def load_demo():
    """(train examples with subject = "author<i>", holdout examples)."""
    from unlearning_engine.data import Example

    def rows(name):
        return [json.loads(x) for x in (FIXTURE / name).read_text().splitlines() if x.strip()]

    train = [Example(question=r["question"], answer=r["answer"], record_id=f"t{i}",
                     subject=f"author{i // ROWS_PER_AUTHOR}") for i, r in enumerate(rows("train.jsonl"))]
    holdout = [Example(question=r["question"], answer=r["answer"], record_id=f"h{i}")
               for i, r in enumerate(rows("holdout.jsonl"))]
    return train, holdout


def metrics_of(model_dir, forget, retain_sample, holdout) -> dict:
    from evaluation.report import EvaluationProfile, evaluate_qa_model
    from unlearning_engine.modeling import load_artifact
    from unlearning_engine.training import evaluate_nll

    model, tok = load_artifact(model_dir, device="cpu", with_eco=False)
    rep = evaluate_qa_model(model, tok, forget=forget, retain=retain_sample, holdout=holdout,
                            profile=EvaluationProfile(max_retain_examples=len(retain_sample),
                                                      bootstrap_resamples=200))
    m = rep["metrics"]
    return {"knowmem_retain": m["knowmem_retain"]["value"], "knowmem_forget": m["knowmem_forget"]["value"],
            "retain_nll": evaluate_nll(model, tok, retain_sample)}


def run_setting(name: str, dp_kwargs: dict, work: Path, base_dir: Path, train, forget, retain,
                retain_sample, holdout, dp2_hp: dict) -> dict:
    from unlearning_engine import UnlearningRequest, run_unlearning
    from unlearning_engine.dp import group_privacy, train_dp_base

    t0 = time.perf_counter()
    led = train_dp_base(base_dir, train, work / f"{name}-bm", device="cpu", **dp_kwargs)
    t_bm = time.perf_counter() - t0
    bm = metrics_of(work / f"{name}-bm", forget, retain_sample, holdout)
    t1 = time.perf_counter()
    res = run_unlearning(UnlearningRequest(
        method="dp2", model_dir=str(work / f"{name}-bm"), output_dir=str(work / f"{name}-dp2"),
        forget=forget, retain=retain, dp_base_dir=str(work / f"{name}-bm"),
        hyperparameters=dict(dp2_hp), device="cpu"))
    t_dp2 = time.perf_counter() - t1
    dp2 = metrics_of(work / f"{name}-dp2", forget, retain_sample, holdout)
    k = ROWS_PER_AUTHOR
    if led.privacy_unit == "subject":
        eps_s, delta_s = led.epsilon, led.delta
    else:
        eps_s, delta_s = group_privacy(led.epsilon, led.delta, k)
    return {"setting": name, "privacy_unit": led.privacy_unit, "n_units": led.n_units,
            "q": led.sample_rate, "sigma": led.noise_multiplier, "C": led.max_grad_norm,
            "steps": led.steps, "accountant": led.accountant, "epsilons": led.epsilons,
            "target_epsilon": led.target_epsilon, "epsilon": led.epsilon, "delta": led.delta,
            "per_subject_epsilon": eps_s, "per_subject_delta": delta_s,
            "dp_base_seconds": round(t_bm, 1), "dp_base_train_seconds": round(led.wall_seconds, 1),
            "dp2_seconds": round(t_dp2, 1), "dp2_steps": res.steps, "bm": bm, "dp2": dp2}


def time_unit_gradient(base_dir: Path, train, work: Path, records: int, steps_epochs: int) -> dict:
    """Wall seconds of the training loop (ledger.wall_seconds, calibration excluded) per mode."""
    from unlearning_engine.dp import train_dp_base

    out = {}
    for mode in ("aggregate", "pack"):
        led = train_dp_base(base_dir, train, work / f"t-{mode}", target_epsilon=8.0, delta=1e-6,
                            sample_rate=0.1, epochs=steps_epochs, lr=3e-3, max_grad_norm=1.0,
                            max_records_per_unit=records, unit_gradient=mode, accountant="rdp",
                            device="cpu")
        out[mode] = {"seconds": round(led.wall_seconds, 2), "steps": led.steps,
                     "seconds_per_step": round(led.wall_seconds / led.steps, 3)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "var" / "bench" / "dp_unit"))
    ap.add_argument("--epsilon", type=float, default=8.0)
    ap.add_argument("--delta", type=float, default=1e-6)
    ap.add_argument("--retain-sample", type=int, default=60)
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--settings", default="record q=0.1,subject q=0.1,subject q=0.3",
                    help="comma-separated subset of the settings; empty = timing only")
    args = ap.parse_args(argv)
    from unlearning_engine.data import format_example
    from unlearning_engine.modeling import DEMO_RECIPE, build_model, save_artifact, train_tokenizer

    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    train, holdout = load_demo()
    n_auth = len(train) // ROWS_PER_AUTHOR
    forget = [e for e in train if e.subject == f"author{n_auth - 1}"]
    retain = [e for e in train if e.subject != f"author{n_auth - 1}"]
    retain_sample = retain[:: max(1, len(retain) // args.retain_sample)][: args.retain_sample]
    tok = train_tokenizer([format_example(e) for e in train], **DEMO_RECIPE["tokenizer"])
    base_dir = work / "base"
    save_artifact(build_model(tok, DEMO_RECIPE["model"]["preset"], seed=0), tok, base_dir)
    d = DEMO_RECIPE["dp_base"]
    common = {"target_epsilon": args.epsilon, "delta": args.delta, "epochs": d["epochs"],
              "lr": d["lr"], "max_grad_norm": d["max_grad_norm"], "accountant": "auto"}
    settings = [
        ("record q=0.1", {**common, "privacy_unit": "record", "sample_rate": 0.1}),
        ("subject q=0.1", {**common, "privacy_unit": "subject", "sample_rate": 0.1,
                           "max_records_per_unit": ROWS_PER_AUTHOR}),
        ("subject q=0.3", {**common, "privacy_unit": "subject", "sample_rate": 0.3,
                           "max_records_per_unit": ROWS_PER_AUTHOR}),
    ]
    wanted = [x.strip() for x in args.settings.split(",") if x.strip()]
    rows = []
    for name, kw in [(n, kw) for n, kw in settings if n in wanted]:
        row = run_setting(name.replace(" ", "_").replace("=", ""), kw, work, base_dir, train, forget,
                          retain, retain_sample, holdout, DEMO_RECIPE["dp2"])
        row["setting"] = name
        rows.append(row)
        print(json.dumps(row), flush=True)
    timing = None if args.skip_timing else time_unit_gradient(base_dir, train, work, 4, 1)
    doc = {"environment": environment(), "rows": rows, "unit_gradient_timing": timing,
           "forget": "last author (20 records)", "retain_sample": len(retain_sample)}
    (work / "dp_unit.json").write_text(json.dumps(doc, indent=1))
    print(table(doc))
    return 0


def table(doc: dict) -> str:
    def f(x, p=1):
        return "–" if x is None else f"{x:.{p}f}"

    lines = ["| setting | units N | q | σ | steps | accountant | ε (target) | δ | ε per subject | δ per subject "
             "| BM KnowMem_r | BM retain NLL | DP2 KnowMem_r | DP2 KnowMem_f | DP2 retain NLL | BM s | DP2 s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(
            f"| {r['setting']} | {r['n_units']} | {r['q']:.2f} | {r['sigma']:.3f} | {r['steps']} | {r['accountant']} "
            f"| {r['epsilon']:.2f} ({r['target_epsilon']:g}) | {r['delta']:.0e} | {r['per_subject_epsilon']:.2f} "
            f"| {r['per_subject_delta']:.1e} | {f(r['bm']['knowmem_retain'])} | {f(r['bm']['retain_nll'], 3)} "
            f"| {f(r['dp2']['knowmem_retain'])} | {f(r['dp2']['knowmem_forget'])} | {f(r['dp2']['retain_nll'], 3)} "
            f"| {r['dp_base_seconds']:.0f} | {r['dp2_seconds']:.0f} |")
    t = doc.get("unit_gradient_timing")
    if t:
        lines.append("")
        lines.append("| unit gradient | steps | s/step |")
        lines.append("|---|---|---|")
        for mode, v in t.items():
            lines.append(f"| {mode} | {v['steps']} | {v['seconds_per_step']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
