"""How much does the PrivLeak reference move with the retrain's training seed? (issue 12 follow-up)

On the demo recipe ("tiny" model, public WikiText-2 tokenizer, bundled TOFU subset: forget = the
last author's 20 records, holdout = the 40 holdout records) this trains

- ``retrain:<seed>``: an exact retrain on D_r with that training seed (data order),
- ``bm[:eps]``: the subject-level DP base (the demo's dp_base recipe, optionally another ε),
- ``dp2:<k=v/...>``: dp2 from that DP base with overrides (``eps=1``, ``epochs=16``, ``steps=...``),

and prints, per model, the Min-K% and loss AUCs (with their 95 % bootstrap CIs) and VerbMem_f,
KnowMem_f, KnowMem_r; at the end the PrivLeak verdict of every dp2 model against the first retrain
alone and against all retrains (``evaluation.privleak_reference``).

    OMP_NUM_THREADS=2 python bench/privleak_seeds.py --out var/bench/privleak_seeds \\
        retrain:0 retrain:1 retrain:2 bm dp2:epochs=12 dp2:eps=1/epochs=12

Models already in ``--out`` are reused. Writes ``OUT/privleak_seeds.json``.
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
from bench.dp_unit import load_demo  # noqa: E402


def _evaluate(model_dir: Path, forget, retain, holdout) -> dict:
    from evaluation.report import EvaluationProfile, evaluate_qa_model
    from unlearning_engine.modeling import load_artifact

    model, tok = load_artifact(model_dir, device="cpu", with_eco=False)
    return evaluate_qa_model(model, tok, forget=forget, retain=retain[::10], holdout=holdout,
                             profile=EvaluationProfile(max_retain_examples=58, bootstrap_resamples=200))


def _dp2_overrides(arg: str) -> tuple[float | None, dict]:
    eps, hp = None, {}
    for kv in filter(None, arg.split("/")):
        key, value = kv.split("=")
        if key == "eps":
            eps = float(value)
        else:
            hp[key] = int(value) if key in ("epochs", "steps", "batch_size") else float(value)
    return eps, hp


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "var" / "bench" / "privleak_seeds"))
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args(argv)
    from evaluation.verdicts import compute_verdicts
    from unlearning_engine import UnlearningRequest, run_unlearning
    from unlearning_engine.dp import train_dp_base
    from unlearning_engine.modeling import DEMO_RECIPE, build_model, save_artifact
    from unlearning_engine.public_tokenizer import public_tokenizer

    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    train, holdout = load_demo()
    last = f"author{len(train) // 20 - 1}"
    forget = [e for e in train if e.subject == last]
    retain = [e for e in train if e.subject != last]
    base = work / "base"
    if not base.exists():
        save_artifact(build_model(public_tokenizer(2048), "tiny", seed=0), public_tokenizer(2048), base)

    def dp_base(eps: float | None) -> Path:
        out = work / ("bm" if eps is None else f"bm-eps{eps:g}")
        if not out.exists():
            kw = dict(DEMO_RECIPE["dp_base"], **({"target_epsilon": eps} if eps is not None else {}))
            train_dp_base(base, train, out, device="cpu", **kw)
        return out

    rows = []
    for variant in args.variants:
        t0 = time.perf_counter()
        kind, _, arg = variant.partition(":")
        if kind == "retrain":
            out = work / f"retrain-s{int(arg)}"
            if not out.exists():
                run_unlearning(UnlearningRequest(method="retrain", model_dir=str(base), output_dir=str(out),
                                                 forget=forget, retain=retain, base_dir=str(base),
                                                 hyperparameters=dict(DEMO_RECIPE["retrain"]), seed=int(arg),
                                                 device="cpu"))
        elif kind == "bm":
            out = dp_base(float(arg) if arg else None)
        elif kind == "dp2":
            eps, hp = _dp2_overrides(arg)
            bm = dp_base(eps)
            out = work / ("dp2-" + (arg.replace("/", "_").replace("=", "") or "default"))
            if not out.exists():
                run_unlearning(UnlearningRequest(method="dp2", model_dir=str(bm), output_dir=str(out), forget=forget,
                                                 retain=retain, dp_base_dir=str(bm),
                                                 hyperparameters={**DEMO_RECIPE["dp2"], "steps": None, **hp},
                                                 device="cpu"))
        else:
            raise SystemExit(f"unknown variant {variant!r}")
        report = _evaluate(out, forget, retain, holdout)
        m = report["metrics"]
        rows.append({"variant": variant, "seconds": round(time.perf_counter() - t0, 1), "report": report,
                     **{k: {"value": m[k].get("value"), "ci95": m[k].get("ci95")}
                        for k in ("mink_auc", "loss_auc", "verbmem_forget", "knowmem_forget", "knowmem_retain")}})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "report"}), flush=True)

    retrains = [r["report"] for r in rows if r["variant"].startswith("retrain:")]
    for r in rows:
        if retrains and r["variant"].startswith("dp2"):
            one = compute_verdicts(r["report"], retrains[0], retrains[0], reference_auc=None)
            all_ = compute_verdicts(r["report"], retrains[0], retrains[0], reference_auc=None,
                                    retrained_others=retrains[1:])
            r["privleak"] = {name: {k: v["privleak"][k] for k in ("value", "ci95", "reference")}
                             | {"status": next(c["status"] for c in v["checks"] if c["name"] == "privleak")}
                             for name, v in (("one_retrain", one), (f"{len(retrains)}_retrains", all_))}
            print(r["variant"], json.dumps(r["privleak"]), flush=True)
    for r in rows:
        r.pop("report")
    (work / "privleak_seeds.json").write_text(json.dumps({"environment": environment(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
