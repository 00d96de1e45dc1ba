"""RESTOR runner (Rezaei et al., arXiv 2411.00204 §3): corrupt a clean model, unlearn the
corrupting documents with every weight-changing method, measure how much of the clean model's
knowledge comes back. Set-up, judge and pinned settings: :mod:`evaluation.profiles.restor`;
formulas: :mod:`evaluation.profiles.restor_metrics`.

One run (:func:`run_restor`), cached under ``work_dir`` (a finished stage is reused):

1. facts F: pool questions the clean model answers correctly (at most ``n_facts``);
2. corrupted model = clean model fine-tuned on corrupting + filler documents with the preset's
   ``retrain`` recipe (LoRA adapter merged for the SmolLM2 LoRA preset);
3. DP base (only with ``dp2``): DP-SGD fine-tune of the clean model on the same documents with
   the preset's DP-base recipe, privacy unit = one fact's corrupting documents (a filler record is
   its own unit);
4. every method of the profile, ``retrain`` first, in the same run: forget set = corrupting
   documents, retain set = filler, target = corrupted model, ``retrain``'s base = clean model;
   methods that do not change weights (``eco``) are listed as skipped;
5. greedy answers of every model judged on F; JSON report + PNG (accuracy clean → corrupted →
   unlearned per method, and the recovery rate with its exact 95% CI).

CLI: ``python -m evaluation --profile restor --model CLEAN_DIR --out report.json [--set
preset=tiny] [--set methods='["retrain","ga"]'] [--limit N_FACTS]`` (``manage.py evaluate``
too), or ``python -m evaluation.restor_runner --preset tiny --out DIR`` which also builds the
clean model (the demo model trained on the TOFU demo subset, or the exported SmolLM2). No Django.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from unlearning_engine.data import Example

from .datafiles import read_records
from .generation import KNOWMEM_STOP_STRINGS, greedy_generate
from .profiles.restor import (
    JUDGE_STATEMENT,
    SOURCE,
    Fact,
    RestorProfile,
    choose_wrong_value,
    corrupting_documents,
    digest,
    filler_documents,
    judge_answer,
    load_fact_pool,
    tofu_demo_dir,
)
from .profiles.restor_metrics import restor_metrics

__all__ = ["run_restor", "prepare_clean_model", "plot_restor", "format_restor_table", "main"]

SMOLLM2_PRESETS = ("smollm2-135m-lora", "smollm2-135m")
_QA_PROMPT = "Question: {question}\nAnswer: "


def _log_default(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


# ----------------------------------------------------------------------------- models

def prepare_clean_model(work_dir: Path, preset: str, *, seed: int = 0, records: list[Example] | None = None,
                        epochs: int | None = None, log=_log_default) -> Path:
    """The clean model: the exported SmolLM2-135M-Instruct for a SmolLM2 preset, else the demo
    model (public WikiText-2 tokenizer, modeling ``preset``) fine-tuned with
    ``DEMO_RECIPE["target"]`` on ``records`` (default: the bundled TOFU demo subset). Cached in
    ``work_dir/clean-<digest>``."""
    from unlearning_engine.modeling import DEMO_RECIPE, PRESET_VOCAB, build_model, save_artifact

    if preset in SMOLLM2_PRESETS:
        from unlearning_engine.modeling import export_smollm2
        return export_smollm2()
    from unlearning_engine.public_tokenizer import public_tokenizer
    from unlearning_engine.training import train_causal_lm

    if records is None:
        records = [Example(question=r["question"], answer=r["answer"], record_id=f"demo{i}")
                   for i, r in enumerate(read_records(tofu_demo_dir() / "train.jsonl"))]
    recipe = dict(DEMO_RECIPE["target"], **({"epochs": epochs} if epochs else {}))
    out = work_dir / f"clean-{digest([preset, seed, recipe, [r.to_dict() for r in records]])[:12]}"
    if (out / "model.safetensors").is_file():
        return out
    tok = public_tokenizer(vocab_size=PRESET_VOCAB[preset], source="wikitext2")
    model = build_model(tok, preset, seed=seed)
    t = time.perf_counter()
    st = train_causal_lm(model, tok, records, seed=seed, phase="clean", **recipe)
    save_artifact(model, tok, out)
    log(f"[restor] clean {preset} model trained on {len(records)} records in "
        f"{time.perf_counter() - t:.0f}s ({st.steps} steps)")
    return out


def _train_corrupted(clean_dir: Path, docs: list[Example], out: Path, recipe: dict, seed: int, device: str) -> dict:
    from unlearning_engine.modeling import load_artifact, save_artifact
    from unlearning_engine.training import train_causal_lm

    hp = dict(recipe)
    lora = hp.pop("lora", None)
    model, tok = load_artifact(clean_dir, device)
    if lora:
        from unlearning_engine.hparams import v_lora
        from unlearning_engine.lora import merge, wrap_lora
        model = wrap_lora(model, v_lora("lora", lora))
    t = time.perf_counter()
    st = train_causal_lm(model, tok, docs, seed=seed, phase="corrupt", epochs=hp["epochs"], lr=hp["lr"],
                         batch_size=hp["batch_size"])
    if lora:
        model = merge(model)
    save_artifact(model.cpu(), tok, out)
    return {"steps": st.steps, "tokens": st.tokens, "seconds": round(time.perf_counter() - t, 2),
            "final_loss": st.final_loss}


def _dp_recipe(preset: str) -> dict:
    from unlearning_engine.modeling import DEMO_RECIPE
    if preset in SMOLLM2_PRESETS:
        from unlearning_engine.presets import SMOLLM2_LORA_RECIPE
        return dict(SMOLLM2_LORA_RECIPE["dp_base"], privacy_unit="subject")
    r = dict(DEMO_RECIPE["dp_base"])
    if preset == "test":
        r["epochs"] = 1
    return r


def _answers(model_dir, facts: list[Fact], profile: RestorProfile, device: str) -> list[str]:
    from unlearning_engine.modeling import load_artifact

    model, tok = load_artifact(model_dir, device)
    return greedy_generate(model, tok, [_QA_PROMPT.format(question=f.question) for f in facts],
                           profile.max_new_tokens, batch_size=profile.generation_batch_size,
                           stop_strings=KNOWMEM_STOP_STRINGS)


def _select_facts(clean_dir, pool: list[Fact], profile: RestorProfile, device: str) -> tuple[list, list, dict]:
    """First ``n_facts`` pool facts (with a wrong value) the clean model answers correctly;
    returns ``(facts, clean_answers, stats)``."""
    from unlearning_engine.modeling import load_artifact

    usable, no_wrong = [], 0
    for f in pool[: profile.pool_limit] if profile.pool_limit else pool:
        try:
            usable.append(choose_wrong_value(f, profile.seed))
        except ValueError:
            no_wrong += 1
    model, tok = load_artifact(clean_dir, device)
    facts, answers, asked, judged = [], [], 0, {}
    chunk = max(profile.generation_batch_size, 32)
    while len(facts) < profile.n_facts and asked < len(usable):
        part = usable[asked: asked + chunk]
        asked += len(part)
        outs = greedy_generate(model, tok, [_QA_PROMPT.format(question=f.question) for f in part],
                               profile.max_new_tokens, batch_size=profile.generation_batch_size,
                               stop_strings=KNOWMEM_STOP_STRINGS)
        for f, a in zip(part, outs, strict=True):
            j = judge_answer(a, f.value, f.wrong)
            judged[j] = judged.get(j, 0) + 1
            if j == "correct" and len(facts) < profile.n_facts:
                facts.append(f)
                answers.append(a)
    stats = {"pool": len(pool), "without_wrong_value": no_wrong, "asked": asked,
             "clean_judgements_of_asked": judged, "selected": len(facts),
             "clean_pool_accuracy": None if not asked else round(100.0 * judged.get("correct", 0) / asked, 2)}
    return facts, answers, stats


def _hp(profile: RestorProfile, method: str) -> dict:
    from unlearning_engine.methods import get_method
    hp = {"preset": profile.preset}
    if profile.unlearn_epochs:
        hp["epochs"] = profile.unlearn_epochs
    if not profile.collapse_check:
        hp["collapse_check"] = False
    allowed = get_method(method).defaults
    return {k: v for k, v in hp.items() if k in allowed}


def _run_method(method: str, ctx: dict, profile: RestorProfile, out: Path, device: str) -> tuple[dict, Path | None]:
    from unlearning_engine.errors import UnlearningError
    from unlearning_engine.methods import UnlearningRequest, get_method, run_unlearning

    if not get_method(method).changes_weights:
        return {"status": f"skipped: {method} does not change the weights (inference-time suppression)"}, None
    if method == "dp2" and ctx.get("dp_base") is None:
        return {"status": f"skipped: no DP base ({ctx.get('dp_error')})"}, None
    if (out / "model.safetensors").is_file() and (out / "restor_run.json").is_file():
        return json.loads((out / "restor_run.json").read_text()), out
    t = time.perf_counter()
    try:
        res = run_unlearning(UnlearningRequest(
            method=method, model_dir=str(ctx["corrupted"]), output_dir=str(out), forget=ctx["docs"],
            retain=ctx["filler"], base_dir=str(ctx["clean"]), dp_base_dir=ctx.get("dp_base"),
            hyperparameters=_hp(profile, method), seed=profile.seed, device=device))
    except UnlearningError as exc:  # collapse or refused input: a row with the reason
        return {"status": f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}",
                "wall_seconds": round(time.perf_counter() - t, 2)}, None
    run = {"status": "ok", "wall_seconds": round(time.perf_counter() - t, 2), "steps": res.steps,
           "tokens": res.tokens, "hyperparameters": res.hyperparameters, "weights_sha256": res.weights_sha256}
    (out / "restor_run.json").write_text(json.dumps(run, default=str))
    return run, out


def _prepare_dp_base(ctx: dict, profile: RestorProfile, work: Path, device: str, log) -> dict:
    from unlearning_engine.dp import train_dp_base

    recipe = _dp_recipe(profile.preset)
    out = work / f"dp_base-{digest([ctx['corruption_digest'], recipe])[:12]}"
    meta = out / "restor_dp.json"
    if meta.is_file():
        return json.loads(meta.read_text())
    t = time.perf_counter()
    try:
        ledger = train_dp_base(ctx["clean"], ctx["docs"] + ctx["filler"], out, seed=profile.seed,
                               device=device, **recipe)
    except ValueError as exc:  # e.g. too few privacy units for the recipe
        return {"dir": None, "error": str(exc), "recipe": recipe}
    info = {"dir": str(out), "recipe": recipe, "seconds": round(time.perf_counter() - t, 2),
            "ledger": ledger.to_dict()}
    meta.write_text(json.dumps(info, default=str))
    log(f"[restor] DP base trained in {info['seconds']:.0f}s (eps={info['ledger'].get('epsilon')})")
    return info


def _corruption(clean_dir: Path, facts: list[Fact], profile: RestorProfile, work: Path, device: str, log) -> dict:
    from unlearning_engine.modeling import weights_sha256
    from unlearning_engine.presets import preset_hyperparameters

    docs = corrupting_documents(facts, profile.templates)
    filler, filler_prov = filler_documents(Path(profile.data_dir), profile.n_filler or len(docs), profile.seed)
    recipe = preset_hyperparameters("retrain", profile.preset)
    if profile.corruption_epochs:
        recipe["epochs"] = profile.corruption_epochs
    key = digest([weights_sha256(clean_dir), [d.to_dict() for d in docs], filler_prov, recipe, profile.seed])
    out = work / f"corrupted-{key[:12]}"
    meta = out / "restor_corrupt.json"
    if meta.is_file():
        stats = json.loads(meta.read_text())
    else:
        stats = _train_corrupted(clean_dir, docs + filler, out, recipe, profile.seed, device)
        meta.write_text(json.dumps(stats))
        log(f"[restor] corrupted model: {len(docs)} corrupting + {len(filler)} filler documents, "
            f"{stats['steps']} steps in {stats['seconds']:.0f}s")
    return {"clean": clean_dir, "corrupted": out, "docs": docs, "filler": filler, "corruption_digest": key,
            "info": {"corrupting_documents": len(docs), "filler_documents": len(filler), "filler": filler_prov,
                     "corrupting_sha256": digest([d.to_dict() for d in docs]), "recipe": recipe,
                     "training": stats, "dir": str(out)}}


def _judge_all(answers: list[str], facts: list[Fact]) -> list[str]:
    return [judge_answer(a, f.value, f.wrong) for a, f in zip(answers, facts, strict=True)]


def run_restor(clean_dir: str | Path, profile: RestorProfile, work_dir: str | Path, *, device: str = "cpu",
               pool: list[Fact] | None = None, out: str | Path | None = None, log=_log_default) -> dict:
    """Run the RESTOR protocol (module docstring) from the clean model in ``clean_dir``.

    ``pool``: fact pool (default :func:`load_fact_pool` of the profile). Returns the report
    ``{"profile", "source", "judge", "facts", "setup", "models", "methods", "metrics", "timing"}``
    (written to ``out`` with the figure ``<out stem>.png`` when ``out`` is given). Never raises
    on an empty fact set: the metrics are then undefined with the reason and no model is trained.
    Raises ValueError for an unknown method or preset, FileNotFoundError for missing data.
    """
    from unlearning_engine.methods import available_methods
    from unlearning_engine.presets import PRESET_HP

    if profile.preset not in PRESET_HP:
        raise ValueError(f"unknown preset {profile.preset!r}; choose one of {sorted(PRESET_HP)}")
    unknown = sorted(set(profile.methods) - set(available_methods()))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available: {available_methods()}")
    methods = ["retrain"] + [m for m in profile.methods if m != "retrain"]
    t0 = time.perf_counter()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    clean_dir = Path(clean_dir)
    pool_info = {"source": "given", "population": len(pool)} if pool is not None else None
    if pool is None:
        pool, pool_info = load_fact_pool(profile)
    facts, clean_answers, sel = _select_facts(clean_dir, pool, profile, device)
    clean_j = ["correct"] * len(facts)
    report = {"profile": profile.to_dict(), "source": SOURCE, "judge": JUDGE_STATEMENT,
              "setup": {"clean_dir": str(clean_dir), "pool": pool_info, "selection": sel},
              "facts": [], "models": {}, "methods": [], "metrics": {}}
    log(f"[restor] {len(facts)} facts the clean model answers correctly ({sel['asked']} asked)")
    if not facts:
        empty = restor_metrics([], [], [])
        report["models"] = {"clean": empty["clean"], "corrupted": empty["corrupted"], "lost": []}
        report["methods"] = [{"method": m, "status": "skipped: no facts to corrupt", "metrics": empty["unlearned"]}
                             for m in methods]
        report["metrics"] = _summary(report)
        return _finish(report, out, t0)
    ctx = _corruption(clean_dir, facts, profile, work, device, log)
    report["setup"]["corruption"] = ctx["info"]
    corr_answers = _answers(ctx["corrupted"], facts, profile, device)
    corr_j = _judge_all(corr_answers, facts)
    if "dp2" in methods:
        dp = _prepare_dp_base(ctx, profile, work, device, log)
        ctx["dp_base"], ctx["dp_error"] = dp.get("dir"), dp.get("error")
        report["setup"]["dp_base"] = dp
    base = restor_metrics(clean_j, corr_j)
    report["models"] = {"clean": base["clean"], "corrupted": base["corrupted"], "lost": base["lost"]}
    per_method_answers = {}
    for m in methods:
        run, mdir = _run_method(m, ctx, profile, work / f"unlearned-{ctx['corruption_digest'][:12]}" / m, device)
        row = {"method": m, **run, "metrics": None}
        if mdir is not None:
            ans = _answers(mdir, facts, profile, device)
            per_method_answers[m] = ans
            row["metrics"] = restor_metrics(clean_j, corr_j, _judge_all(ans, facts))["unlearned"]
            rec = row["metrics"]["recovery"]["value"]
            log(f"[restor] {m}: accuracy {row['metrics']['accuracy']['value']:.1f}% recovery "
                f"{'undefined' if rec is None else f'{rec:.1f}%'} ({run.get('wall_seconds')}s)")
        else:
            log(f"[restor] {m}: {run['status']}")
        report["methods"].append(row)
    for i, f in enumerate(facts):
        report["facts"].append({**f.to_dict(), "clean_answer": clean_answers[i], "corrupted_answer": corr_answers[i],
                                "corrupted_judgement": corr_j[i],
                                "unlearned": {m: {"answer": a[i], "judgement": judge_answer(a[i], f.value, f.wrong)}
                                              for m, a in per_method_answers.items()}})
    report["metrics"] = _summary(report)
    return _finish(report, out, t0)


def _summary(report: dict) -> dict:
    """Flat ``{name: MetricValue dict}`` for tables and certificates: accuracy of the clean and
    corrupted models, and per method ``<method>.accuracy``, ``.recovery``, ``.corrupted_share``."""
    s = {"clean.accuracy": report["models"]["clean"]["accuracy"],
         "corrupted.accuracy": report["models"]["corrupted"]["accuracy"],
         "corrupted.corrupted_share": report["models"]["corrupted"]["corrupted_share"]}
    for row in report["methods"]:
        if row.get("metrics"):
            for k in ("accuracy", "recovery", "corrupted_share", "collateral"):
                s[f"{row['method']}.{k}"] = row["metrics"][k]
    return s


def _finish(report: dict, out, t0: float) -> dict:
    from .runners import _environment

    report["environment"] = _environment()
    report["timing"] = {"wall_seconds": round(time.perf_counter() - t0, 2)}
    if out:
        p = Path(out)
        p.parent.mkdir(parents=True, exist_ok=True)
        fig = p.with_suffix(".png")
        plot_restor(report, fig)
        report["figure"] = {"file": fig.name, "media_type": "image/png"}
        p.write_text(json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False, default=str) + "\n",
                     encoding="utf-8")
    return report


# ----------------------------------------------------------------------------- figure / table

def _v(m: dict | None) -> tuple[float, float, float]:
    if not m or m.get("value") is None:
        return float("nan"), 0.0, 0.0
    lo, hi = m.get("ci95") or (m["value"], m["value"])
    return m["value"], max(m["value"] - lo, 0.0), max(hi - m["value"], 0.0)


def plot_restor(report: dict, path: str | Path) -> None:
    """Left: accuracy (%) clean → corrupted → unlearned, one line per method (95% exact CI on
    the unlearned point); right: recovery rate per method with its CI."""
    from .runners import _pyplot

    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    clean = _v((report.get("models") or {}).get("clean", {}).get("accuracy"))[0]
    corr = _v((report.get("models") or {}).get("corrupted", {}).get("accuracy"))[0]
    rows = [r for r in report.get("methods", []) if r.get("metrics")]
    for i, r in enumerate(rows):
        v, lo, hi = _v(r["metrics"]["accuracy"])
        dx = 0.04 * (i - (len(rows) - 1) / 2)  # spread coinciding lines
        a1.plot([0, 1, 2 + dx], [clean, corr, v], marker="o", label=r["method"])
        a1.errorbar([2 + dx], [v], yerr=[[lo], [hi]], capsize=3, color=a1.lines[-1].get_color())
    a1.set_xticks([0, 1, 2], ["clean", "corrupted", "unlearned"])
    a1.set(ylabel="fact accuracy (%)", ylim=(-2, 102), title=f"Accuracy on {len(report.get('facts', []))} facts")
    a1.legend(fontsize=7, ncol=2)
    names = [r["method"] for r in rows]
    vals = [_v(r["metrics"]["recovery"]) for r in rows]
    a2.bar(names, [0 if v != v else v for v, _, _ in vals], yerr=[[lo for _, lo, _ in vals], [hi for _, _, hi in vals]],
           capsize=3, color="tab:blue")
    n_lost = len((report.get("models") or {}).get("lost") or [])
    a2.set(ylabel="recovery (%)", ylim=(0, 105), title=f"Recovery of the {n_lost} facts lost through corruption")
    a2.tick_params(axis="x", rotation=45, labelsize=8)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    prof = report.get("profile", {})
    fig.suptitle(f"RESTOR ({prof.get('preset')}, {prof.get('fact_source')}; normalised-string judge, no LLM judge)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cell(m: dict | None) -> str:
    if not m:
        return "–"
    if m.get("value") is None:
        return "undefined"
    ci = m.get("ci95")
    return f"{m['value']:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else f"{m['value']:.1f}"


def format_restor_table(report: dict) -> str:
    """Markdown table: model/method, status, wall s, accuracy, recovery, corrupted-value share,
    collateral (percent, exact 95% CI), then the sample sizes and the judge statement."""
    head = ["model", "status", "wall s", "accuracy %", "recovery %", "corrupted-value share %", "collateral %"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    models = report.get("models") or {}
    for name in ("clean", "corrupted"):
        b = models.get(name)
        if b:
            lines.append(f"| ({name}) | | | {_cell(b['accuracy'])} | | {_cell(b['corrupted_share'])} | |")
    for r in report.get("methods", []):
        m = r.get("metrics") or {}
        lines.append(f"| {r['method']} | {r['status'][:60]} | {r.get('wall_seconds', '–')} | {_cell(m.get('accuracy'))} | "
                     f"{_cell(m.get('recovery'))} | {_cell(m.get('corrupted_share'))} | {_cell(m.get('collateral'))} |")
    n_lost = len(models.get("lost") or [])
    sel = (report.get("setup") or {}).get("selection") or {}
    lines.append(f"\nfacts |F| = {len(report.get('facts', []))} (clean accuracy on the {sel.get('asked')} pool questions "
                 f"asked: {sel.get('clean_pool_accuracy')}%), lost through corruption |L| = {n_lost}")
    lines.append(report.get("judge", ""))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.restor_runner", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", help="test | tiny | smollm2-135m-lora")
    ap.add_argument("--clean", default=None, help="clean model dir (default: built, see prepare_clean_model)")
    ap.add_argument("--out", required=True, help="output directory (restor-<preset>.json/.png, models)")
    ap.add_argument("--facts", type=int, default=40, help="n_facts")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every weight-changing method)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="other profile settings")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    return ap


def profile_from(overrides: dict) -> RestorProfile:
    """:class:`RestorProfile` with ``overrides`` (unknown or computed fields → ValueError)."""
    names = {f.name for f in dataclasses.fields(RestorProfile)} - {"name", "source", "judge"}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ValueError(f"unknown or computed RestorProfile field(s) {bad}; allowed: {sorted(names)}")
    return RestorProfile(**{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def main(argv: list[str] | None = None) -> int:
    from .runner import parse_overrides

    args = build_parser().parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    ov = {"preset": args.preset, "n_facts": args.facts, **parse_overrides(args.set)}
    if args.methods:
        ov["methods"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        profile = profile_from(ov)
        out = Path(args.out)
        clean = Path(args.clean) if args.clean else prepare_clean_model(out / "models", profile.preset, seed=profile.seed)
        report = run_restor(clean, profile, out / "models", device=args.device, out=out / f"restor-{profile.preset}.json")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_restor_table(report))
    print(f"wrote {out / f'restor-{profile.preset}.json'} and .png in {report['timing']['wall_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
