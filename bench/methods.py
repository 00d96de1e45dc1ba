"""Every unlearning method on one TOFU erasure request, side by side with exact retraining.

Issue 3's "done when" table and issue 8 items 1–2. One run:

1. builds (or reuses, cached under ``OUT/setup-<digest>/``) the author subset's target model and
   DP base with :func:`evaluation.runners.prepare_setup` — the tiny demo model trained from
   scratch, or the real SmolLM2-135M-Instruct fine-tuned with LoRA (``--preset
   smollm2-135m-lora``);
2. the request forgets the last ``--forget`` authors of the subset (2 = TOFU forget01 =
   authors 198–199, 10 = forget05), retain set = the rest of the subset;
3. runs every method (``retrain`` first: the gold standard and the PrivLeak reference) with its
   preset hyper-parameters, ``--repeats`` times (seeded, same data; wall time reported as the
   median with min/max, metrics from the first run, which the seeds make reproducible);
4. evaluates the target and every unlearned model with the MUSE-style QA profile
   (:func:`evaluation.report.evaluate_qa_model`: VerbMem_f, KnowMem_f, KnowMem_r = ROUGE-L F1
   × 100; Min-K% Prob AUC forget vs ``holdout01``) and PrivLeak = (AUC − AUC_retrain) /
   AUC_retrain × 100 (MUSE arXiv 2407.06460 §3); with ``--tofu`` also TOFU Forget Quality (KS
   test of truth ratios vs the retrained model) and Model Utility (TOFU arXiv 2401.06121 §2.2,
   :func:`evaluation.tofu.evaluate_tofu`, ``--tofu-limit`` questions per split: the first ones
   with the default ``--tofu-profile tofu`` (the benchmark code's conventions), a seeded sample
   with ``tofu_paper``; both with at most 48 generated tokens instead of the profile's 200-token
   total, to keep CPU runs short; the profile name is in the JSON and the table header).

Cost columns: ``wall s`` = the method's own run (loading, training, saving; not evaluation),
``tokens`` = supervised tokens processed by the optimizer steps (forward + backward), ``tok/s`` =
tokens / wall, ``× retrain`` = wall / the retrain's wall in the same run. ``dp2``'s one-time DP
base cost is reported separately (it is paid once per model, not per request).

    python bench/methods.py --preset tiny --authors 30 --forget 2 --repeats 3 --tofu
    python bench/methods.py --preset smollm2-135m-lora --authors 10 --forget 2

Writes ``OUT/methods-<preset>-f<forget>.json`` and ``.png`` and prints a Markdown table. A
finished method's result is kept in ``OUT/runs/`` and reused when the script is re-run with the
same settings (``--fresh`` to redo), so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import environment, pyplot, set_threads  # noqa: E402

#: Order of the table: the exact baseline first, then DP2, then the approximate methods.
METHOD_ORDER = ["retrain", "dp2", "ga", "gd", "kl", "npo", "npo_gd", "npo_kl", "task_vector",
                "whp", "l1_sparse", "eco"]


def _metric(rep: dict | None, name: str):
    if not rep:
        return None
    m = rep["metrics"].get(name)
    return None if m is None else m.get("value")


def _ci(rep: dict | None, name: str):
    if not rep:
        return None
    m = rep["metrics"].get(name) or {}
    return m.get("ci95")


def run_one(method: str, setup, forget, retain, cfg, out: Path, repeats: int, log) -> dict:
    """Run ``method`` ``repeats`` times; returns the timing summary and the first run's dir."""
    from evaluation.runners import _run_method

    walls, runs = [], []
    for i in range(repeats):
        d = out / (method if i == 0 else f"{method}-rep{i}")
        info, path = _run_method(method, setup.target, d, forget, retain, setup, cfg)
        runs.append(info)
        walls.append(info["wall_seconds"])
        log(f"[{method}] run {i + 1}/{repeats}: {info['status']} in {info['wall_seconds']:.1f}s, "
            f"{info.get('tokens')} tokens, {info.get('steps')} steps")
        if info["status"] != "ok":
            break
    first = runs[0]
    return {"status": first["status"], "dir": str(out / method) if first["status"] == "ok" else None,
            "wall_seconds": statistics.median(walls), "wall_min": min(walls), "wall_max": max(walls),
            "repeats": len(walls), "walls": walls, "tokens": first.get("tokens"),
            "steps": first.get("steps"), "hyperparameters": first.get("hyperparameters")}


def evaluate_dir(path: str, forget, retain, holdout, cfg, tofu: dict | None, ref_auc, ref_tr):
    """QA report (+ TOFU report) of one artifact; returns ``(qa, tofu, seconds)``."""
    from evaluation.report import evaluate_qa_model
    from evaluation.tofu import evaluate_tofu, tofu_profile
    from unlearning_engine.modeling import load_artifact

    t = time.perf_counter()
    model, tok = load_artifact(path, cfg.device)
    qa = evaluate_qa_model(model, tok, forget=forget, retain=retain, holdout=holdout,
                           profile=cfg.eval_profile())
    tr = None
    if tofu is not None:
        tr = evaluate_tofu(model, tok, cfg.data_dir,
                           profile=tofu_profile(tofu.get("profile", "tofu"),
                                                forget_split=tofu["split"], limit=tofu["limit"],
                                                verbmem_max_new_tokens=48,
                                                generation_max_new_tokens=48),
                           reference_auc=ref_auc, reference_type="retrain" if ref_auc else None,
                           retrained_truth_ratios=ref_tr)
    return qa, tr, time.perf_counter() - t


def row_of(name: str, run: dict | None, qa: dict | None, tofu: dict | None, ref_auc,
           retrain_wall) -> dict:
    from evaluation.mia import privleak_metric
    from evaluation.stats import MetricValue

    row = {"method": name}
    if run:
        row.update({k: run[k] for k in ("status", "wall_seconds", "wall_min", "wall_max",
                                        "repeats", "tokens", "steps")})
        row["tokens_per_s"] = (run["tokens"] / run["wall_seconds"]
                               if run.get("tokens") and run["wall_seconds"] else None)
        row["ratio_to_retrain"] = (run["wall_seconds"] / retrain_wall if retrain_wall else None)
        row["hyperparameters"] = run.get("hyperparameters")
    for k in ("verbmem_forget", "knowmem_forget", "knowmem_retain", "mink_auc"):
        row[k] = _metric(qa, k)
        row[k + "_ci95"] = _ci(qa, k)
    if qa:
        pl, block = privleak_metric(MetricValue.from_dict(qa["metrics"]["mink_auc"]), ref_auc,
                                    "retrain" if ref_auc is not None else None)
        row["privleak"] = pl.value
        row["privleak_ci95"] = pl.ci95 if hasattr(pl, "ci95") else block.get("ci95")
        row["degenerate_fraction"] = qa.get("degenerate", {}).get("all", {}).get("fraction")
    if tofu:
        row["forget_quality"] = _metric(tofu, "forget_quality")
        row["model_utility"] = _metric(tofu, "model_utility")
    return row


def _f(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def markdown(rows: list[dict], tofu: bool | str) -> str:
    """Markdown table of ``rows``; ``tofu``: add the TOFU columns (a string names the TOFU
    profile in their headers)."""
    head = ["method", "wall s (median [min, max])", "× retrain", "tokens", "tok/s", "VerbMem_f",
            "KnowMem_f", "KnowMem_r", "Min-K AUC", "PrivLeak %"]
    if tofu:
        tag = f", {tofu}" if isinstance(tofu, str) else ""
        head += [f"TOFU FQ (p{tag})", f"TOFU MU{tag and ' (' + tofu + ')'}"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("status") not in (None, "ok"):
            cells = [r["method"], _f(r.get("wall_seconds")), _f(r.get("ratio_to_retrain"), 2), "–",
                     "–", r["status"]] + ["–"] * (len(head) - 6)
        else:
            wall = "–"
            if r.get("wall_seconds") is not None:
                wall = _f(r["wall_seconds"])
                if r.get("repeats", 1) > 1:
                    wall += f" [{_f(r['wall_min'])}, {_f(r['wall_max'])}]"
            cells = [r["method"], wall, _f(r.get("ratio_to_retrain"), 2), _f(r.get("tokens")),
                     _f(r.get("tokens_per_s"), 0), _f(r["verbmem_forget"]),
                     _f(r["knowmem_forget"]), _f(r["knowmem_retain"]), _f(r["mink_auc"], 3),
                     _f(r.get("privleak"))]
            if tofu:
                fq = r.get("forget_quality")
                cells += [("–" if fq is None else f"{fq:.2g}"), _f(r.get("model_utility"), 3)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(rows: list[dict], path: Path, title: str) -> None:
    plt = pyplot()
    ok = [r for r in rows if r.get("verbmem_forget") is not None]
    names = [r["method"] for r in ok]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].bar(names, [r.get("wall_seconds") or 0 for r in ok], color="tab:gray")
    axes[0].set_ylabel("unlearning wall time (s)")
    x = range(len(ok))
    w = 0.27
    for j, (k, lab) in enumerate([("verbmem_forget", "VerbMem_f"), ("knowmem_forget", "KnowMem_f"),
                                  ("knowmem_retain", "KnowMem_r")]):
        axes[1].bar([i + (j - 1) * w for i in x], [r[k] or 0 for r in ok], w, label=lab)
    axes[1].set_xticks(list(x), names)
    axes[1].set_ylabel("ROUGE-L F1 × 100")
    axes[1].legend(fontsize=8)
    axes[2].bar(names, [r.get("privleak") or 0 for r in ok], color="tab:red")
    axes[2].axhspan(-5, 5, color="tab:green", alpha=0.2, label="|PrivLeak| ≤ 5")
    axes[2].set_ylabel("PrivLeak % (vs retrain)")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", help="tiny | test | smollm2-135m-lora")
    ap.add_argument("--authors", type=int, default=30, help="TOFU authors in the subset")
    ap.add_argument("--forget", type=int, default=2, help="forgotten authors (2 = forget01)")
    ap.add_argument("--methods", default=",".join(METHOD_ORDER))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--tofu", action="store_true", help="also TOFU Forget Quality / Model Utility")
    ap.add_argument("--tofu-limit", type=int, default=40, help="questions per TOFU split")
    ap.add_argument("--tofu-profile", choices=("tofu", "tofu_paper"), default="tofu",
                    help="TOFU evaluation profile (default: the benchmark code's conventions)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="var/bench/methods")
    ap.add_argument("--fresh", action="store_true", help="ignore cached method results")
    ap.add_argument("--no-collapse-check", action="store_true",
                    help="keep a collapsed model (smoke runs on the 'test' preset)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_threads(args.threads)
    doc = run_request(args, "python bench/methods.py " + " ".join(
        argv if argv is not None else sys.argv[1:]))
    print(markdown(doc["rows"], (doc["tofu"] or {}).get("profile") or False))
    info = doc["setup"]
    dp = info.get("dp_ledger") or {}
    print(f"\nDP base (one-time, per model): {info.get('seconds', {}).get('dp_base')} s, "
          f"ε = {dp.get('epsilon')}, δ = {dp.get('delta')}, σ = {dp.get('noise_multiplier')}; "
          f"target training {info.get('seconds', {}).get('target')} s")
    print(f"wrote {doc['json']} and .png; total {doc['total_seconds']:.0f}s")
    return 0


def run_request(args: argparse.Namespace, command: str) -> dict:
    """Run the benchmark described by ``args`` (see :func:`build_parser`); returns the JSON
    document (also written to ``OUT/methods-<preset>-f<forget>-a<authors>.json`` with a PNG)."""
    from evaluation.runners import RunnerConfig, prepare_setup
    from unlearning_engine.methods import available_methods

    # bad input is refused before any training
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(available_methods()))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; available: {available_methods()}")
    if args.tofu and args.forget not in (2, 10, 20):
        raise SystemExit("--tofu needs --forget 2, 10 or 20 (TOFU forget01/05/10)")
    if args.repeats < 1 or args.forget < 1 or args.authors <= args.forget:
        raise SystemExit("--repeats >= 1, --forget >= 1 and --authors > --forget are required")
    if "retrain" not in methods:
        methods.insert(0, "retrain")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = RunnerConfig(out_dir=str(out), methods=methods, authors=args.authors,
                       preset=args.preset, device=args.device,
                       collapse_check=not args.no_collapse_check)

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    t_all = time.perf_counter()
    try:
        setup = prepare_setup(cfg, args.forget, log=log)
    except ValueError as exc:  # unknown preset
        raise SystemExit(str(exc)) from None
    forget, retain = setup.split(setup.candidates)
    tofu = None
    if args.tofu:
        split = {2: "forget01", 10: "forget05", 20: "forget10"}.get(args.forget)
        if split is None or args.authors < 200 and setup.candidates != list(
                range(200 - args.forget, 200)):
            raise SystemExit("--tofu needs --forget 2, 10 or 20 (TOFU forget01/05/10)")
        tofu = {"split": split, "limit": args.tofu_limit, "profile": args.tofu_profile}
    tag = f"{args.preset}-f{args.forget}-a{args.authors}"
    runs_dir = out / "runs" / f"{setup.dir.name}-f{args.forget}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    log(f"subset {len(setup.authors)} authors, forget authors {setup.candidates} "
        f"({len(forget)} records), retain {len(retain)} records, holdout {len(setup.holdout)}")

    def cached(name: str, fn):
        f = runs_dir / f"{name}.json"
        if f.is_file() and not args.fresh:
            return json.loads(f.read_text())
        if name.startswith("eval-") and tofu is None and not args.fresh:
            # an evaluation that also has the TOFU metrics serves one that does not need them
            extra = sorted(runs_dir.glob(f"{name}-tofu-*.json"))
            if extra:
                return json.loads(extra[0].read_text())
        val = fn()
        f.write_text(json.dumps(val, default=str))
        return val

    # target model
    def eval_target():
        qa, tr, s = evaluate_dir(setup.target, forget, retain, setup.holdout, cfg, tofu, None,
                                 None)
        return {"qa": qa, "tofu": tr, "eval_seconds": s}
    # the evaluation settings are part of the cache key: a cached evaluation without the TOFU
    # metrics must not serve a run that asks for them
    # (the profile is in the key: evaluations of the earlier "tofu-v1" settings are not reused)
    etag = "" if tofu is None else f"-tofu-{tofu['profile']}-{tofu['split']}-{tofu['limit']}"
    target = cached(f"eval-target{etag}", eval_target)
    log(f"[target] evaluated in {target['eval_seconds']:.0f}s")

    results: dict[str, dict] = {}
    ref_auc, ref_tr, retrain_wall = None, None, None
    def cached_run(m: str) -> dict:
        # a cached run with at least as many repeats serves a request for fewer
        if not args.fresh:
            for f in sorted(runs_dir.glob(f"run-{m}-r*.json"),
                            key=lambda f: -int(f.stem.rsplit("-r", 1)[1])):
                if int(f.stem.rsplit("-r", 1)[1]) >= args.repeats:
                    return json.loads(f.read_text())
        return cached(f"run-{m}-r{args.repeats}",
                      lambda: run_one(m, setup, forget, retain, cfg, runs_dir, args.repeats, log))

    for m in methods:
        run = cached_run(m)
        ev = None
        if run["status"] == "ok":
            ev = cached(f"eval-{m}{etag}", lambda run=run, ra=ref_auc, rt=ref_tr: dict(zip(
                ("qa", "tofu", "eval_seconds"),
                evaluate_dir(run["dir"], forget, retain, setup.holdout, cfg, tofu, ra, rt),
                strict=True)))
            log(f"[{m}] evaluated in {ev['eval_seconds']:.0f}s")
        if m == "retrain":
            if ev is None:
                raise SystemExit(f"the retrain reference failed: {run['status']}")
            ref_auc = ev["qa"]["metrics"]["mink_auc"]["value"]
            retrain_wall = run["wall_seconds"]
            if ev.get("tofu"):
                ref_tr = ev["tofu"]["tofu"]["forget_truth_ratios"]
        results[m] = {"run": run, "eval": ev}

    rows = [row_of("(target)", None, target["qa"], target.get("tofu"), ref_auc, None)]
    for m in methods:
        r = results[m]
        rows.append(row_of(m, r["run"], r["eval"] and r["eval"]["qa"],
                           r["eval"] and r["eval"].get("tofu"), ref_auc, retrain_wall))
    env = environment()
    doc = {"bench": "methods", "command": command, "tofu": tofu,
           "preset": args.preset, "authors": setup.authors, "forget_authors": setup.candidates,
           "forget_records": len(forget), "retain_records": len(retain),
           "holdout_records": len(setup.holdout), "profile": cfg.eval_profile().to_dict(),
           "setup": setup.info, "privleak_reference_auc": ref_auc, "rows": rows,
           "environment": env, "total_seconds": round(time.perf_counter() - t_all, 1)}
    doc["json"] = str(out / f"methods-{tag}.json")
    Path(doc["json"]).write_text(json.dumps(doc, indent=1, default=str))
    title = (f"{args.preset}: forget {len(forget)} records ({len(setup.candidates)} TOFU authors), "
             f"retain {len(retain)}; {env['cpu_count']} CPU, torch {env['torch']}")
    plot(rows, out / f"methods-{tag}.png", title)
    return doc


if __name__ == "__main__":
    raise SystemExit(main())
