"""Scalability and sustainability runners (DESIGN §7, issue 4 item 6).

Sources:

- MUSE (Shi et al., arXiv 2407.06460), §3, criteria C5 "scalability" (the same method on
  forget sets of growing size: cost and metrics per size) and C6 "sustainability" (a sequence of
  unlearning requests on one model lineage: utility and privacy after each request).
- DP2Unlearning (Jahan et al., arXiv 2504.13774): every ``dp2`` request restarts from the DP
  base model BM and fine-tunes it on the *cumulative* retain set D_r = corpus minus every record
  forgotten so far (DESIGN §6.5), so a dp2 lineage never compounds earlier unlearning runs.
  Any other method continues from the previous unlearned model with the forget set of the
  current request and the cumulative retain set (MUSE's sequential setting).

Data (DESIGN §10): TOFU ``full.json`` (rows 20·i … 20·i+19 = author i). A run uses N authors:
the first N−k plus the last k, where the last k are the forget candidates (k = ``--requests``
for sustainability, the largest forget size for scalability). Forget sets of the scalability
runner are the *last* s authors (TOFU forget01/05/10 = last 2/10/20 authors, scaled to the
subset: sizes 1, 2, 4 authors by default). Non-members for the membership-inference metrics:
``holdout01.json`` (40 records of authors never in ``full``).

Setup (cached under ``OUT/setup-<digest>/``, reused when present): tokenizer trained on the
subset, base model (modeling preset), target = base fine-tuned non-privately on the subset
(``DEMO_RECIPE["target"]``) and DP base BM (``DEMO_RECIPE["dp_base"]``). Exact ``retrain``
references (base fine-tuned on the retain set, the method's preset hyper-parameters) are trained
per forget set and cached too, unless ``--quick``: then PrivLeak uses the ideal reference AUC 0.5,
flagged ``"ideal"`` in the JSON (``privleak_reference.type``).

CLI::

    python -m evaluation.runners scalability|sustainability --method dp2 [--method npo_gd] \\
        --out DIR [--authors N] [--preset tiny|test] [--requests 10] [--sizes 1,2,4] [--quick] \\
        [--target-epochs E] [--dp-base-epochs E] [--unlearn-epochs E] [--device cpu] \\
        [--no-collapse-check] [--threads T]

Outputs: ``scalability_<method>.json`` / ``sustainability_<method>.json`` (keys
:data:`SERIES_KEYS`) and ``scalability.png`` / ``sustainability.png`` (one line per method).
No Django imports.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearning_engine.data import Example
from unlearning_engine.errors import CollapseError
from unlearning_engine.methods import UnlearningRequest, run_unlearning
from unlearning_engine.modeling import (
    DEMO_RECIPE,
    PRESET_VOCAB,
    PRESETS,
    build_model,
    load_artifact,
    save_artifact,
)
from unlearning_engine.public_tokenizer import public_tokenizer

from .datafiles import default_data_dir
from .mia import privleak_metric
from .report import EvaluationProfile, evaluate_qa_model
from .stats import MetricValue

__all__ = ["RunnerConfig", "SERIES_KEYS", "STEP_KEYS", "ROW_KEYS", "TOFU_DIR", "select_authors",
           "prepare_setup", "run_scalability", "run_sustainability", "main"]

TOFU_DIR = str(default_data_dir("tofu"))
TOFU_AUTHORS = 200
RECORDS_PER_AUTHOR = 20
SOURCES = {
    "scalability": "MUSE arXiv 2407.06460 §3 C5 (scalability)",
    "sustainability": "MUSE arXiv 2407.06460 §3 C6 (sustainability); dp2 restart-from-BM rule: "
                      "DP2Unlearning arXiv 2504.13774 (DESIGN §6.5)",
}
#: Top-level keys of every JSON series.
SERIES_KEYS = ("kind", "method", "source", "profile", "settings", "setup", "baseline", "series",
               "environment")
#: Keys of one sustainability step.
STEP_KEYS = ("request", "forgotten_authors", "forgotten_count", "forget_records",
             "retain_records", "start", "wall_seconds", "tokens", "steps", "status", "metrics",
             "privleak_reference")
#: Keys of one scalability row.
ROW_KEYS = ("forget_authors", "forget_count", "forget_records", "retain_records", "wall_seconds",
            "tokens", "steps", "status", "metrics", "privleak_reference")
_REPORT_METRICS = ("verbmem_forget", "knowmem_forget", "knowmem_retain", "mink_auc")


@dataclass
class RunnerConfig:
    """Settings of a runner invocation (CLI flags map 1:1).

    ``authors``: size N of the TOFU author subset; ``preset``: model preset ("test" or "tiny",
    also the methods' hyper-parameter preset); ``requests``: sustainability length n;
    ``sizes``: scalability forget sizes in authors; ``quick``: no retrain reference (PrivLeak vs
    the ideal 0.5); ``*_epochs``: overrides of the recipe epochs (target, DP base, and the
    unlearning method + retrain reference); ``collapse_check``: the methods' collapse check
    (a collapsed step is recorded with ``status = "collapse: ..."`` and no metrics); ``profile``: evaluation profile (default: the
    standard profile, with shorter generations for the "test" preset).
    """

    out_dir: str
    methods: list[str] = field(default_factory=lambda: ["dp2"])
    authors: int = 12
    preset: str = "tiny"
    requests: int = 4
    sizes: tuple[int, ...] = (1, 2, 4)
    quick: bool = False
    data_dir: str = TOFU_DIR
    target_epochs: int | None = None
    dp_base_epochs: int | None = None
    unlearn_epochs: int | None = None
    #: dp2's budget in optimizer steps (issue 15 item 3); ``None`` = its epochs
    dp2_steps: int | None = None
    device: str = "cpu"
    seed: int = 0
    collapse_check: bool = True
    profile: EvaluationProfile | None = None

    def eval_profile(self) -> EvaluationProfile:
        if self.profile is not None:
            return self.profile
        if self.preset == "test":
            return EvaluationProfile(verbmem_max_new_tokens=16, knowmem_max_new_tokens=16,
                                     max_retain_examples=40, bootstrap_resamples=200)
        if self.preset in SMOLLM2_PRESETS:
            # TOFU answers are short: 48 new tokens cover the second half of every answer
            # (the demo's setting); 40 retain records keep a CPU evaluation near a minute.
            return EvaluationProfile(verbmem_max_new_tokens=48, max_retain_examples=40)
        return EvaluationProfile()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["sizes"] = list(self.sizes)
        d["profile"] = None if self.profile is None else "custom"
        return d


# ----------------------------------------------------------------------------- data / setup

def select_authors(n_authors: int, k: int) -> tuple[list[int], list[int]]:
    """``(subset, forget_candidates)``: the first N−k TOFU authors plus the last k; the
    candidates are the last k, in increasing order. Raises ValueError unless 1 ≤ k < N ≤ 200."""
    if not 1 <= k < n_authors <= TOFU_AUTHORS:
        raise ValueError(f"need 1 <= k < authors <= {TOFU_AUTHORS} (authors={n_authors}, k={k})")
    cands = list(range(TOFU_AUTHORS - k, TOFU_AUTHORS))
    return list(range(n_authors - k)) + cands, cands


def _load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _author_records(rows: list[dict], authors: list[int]) -> dict[int, list[Example]]:
    return {a: [Example(question=rows[i]["question"], answer=rows[i]["answer"],
                        record_id=f"tofu{i}")
                for i in range(RECORDS_PER_AUTHOR * a, RECORDS_PER_AUTHOR * (a + 1))]
            for a in authors}


@dataclass
class Setup:
    """Trained artifacts and data of one author subset (see :func:`prepare_setup`)."""

    dir: Path
    authors: list[int]
    candidates: list[int]
    records: dict[int, list[Example]]
    holdout: list[Example]
    info: dict

    @property
    def base(self) -> str:
        return str(self.dir / "base")

    @property
    def target(self) -> str:
        return str(self.dir / "target")

    @property
    def dp_base(self) -> str:
        return str(self.dir / "dp_base")

    def corpus(self) -> list[Example]:
        return [e for a in self.authors for e in self.records[a]]

    def split(self, forgotten: list[int], current: list[int] | None = None
              ) -> tuple[list[Example], list[Example]]:
        """``(forget, retain)``: forget = records of ``current`` (default: all ``forgotten``),
        retain = corpus minus the records of every author in ``forgotten``."""
        gone = set(forgotten)
        cur = forgotten if current is None else current
        forget = [e for a in cur for e in self.records[a]]
        retain = [e for a in self.authors if a not in gone for e in self.records[a]]
        return forget, retain


#: Presets whose base is the real pre-trained SmolLM2-135M-Instruct (DESIGN §10) instead of a
#: model built from scratch with the public WikiText-2 tokenizer.
SMOLLM2_PRESETS = ("smollm2-135m-lora",)


def _recipe(cfg: RunnerConfig) -> dict:
    if cfg.preset in SMOLLM2_PRESETS:
        from unlearning_engine.presets import SMOLLM2_LORA_RECIPE
        target = dict(SMOLLM2_LORA_RECIPE["target"])
        dp = dict(SMOLLM2_LORA_RECIPE["dp_base"])
    else:
        target = dict(DEMO_RECIPE["target"])
        dp = dict(DEMO_RECIPE["dp_base"])
    if cfg.target_epochs:
        target["epochs"] = cfg.target_epochs
    if cfg.dp_base_epochs:
        dp["epochs"] = cfg.dp_base_epochs
    if cfg.preset in SMOLLM2_PRESETS:
        return {"tokenizer": "SmolLM2-135M-Instruct", "model": {"preset": cfg.preset,
                                                                "base": "SmolLM2-135M-Instruct"},
                "target": target, "dp_base": dp}
    # public tokenizer (WikiText-2 BPE), never the private corpus (issue 12 item 3)
    return {"tokenizer": {"source": "wikitext2", "vocab_size": PRESET_VOCAB[cfg.preset]},
            "model": {"preset": cfg.preset},
            "target": target, "dp_base": dp}


def prepare_setup(cfg: RunnerConfig, k: int, log=print, progress=None) -> Setup:
    """Train (or reuse) tokenizer, base, target and DP base for the subset with k candidates.

    The cache directory ``OUT/setup-<sha256(authors, preset, recipe, seed)[:12]>`` is reused
    when its ``setup.json`` exists (written last, so a half-built setup is rebuilt). With a
    SmolLM2 preset (:data:`SMOLLM2_PRESETS`) the base is a link to the exported SmolLM2 cache
    and the target / DP base are LoRA fine-tunes merged into the weights. ``progress``: the
    training loops' :class:`unlearning_engine.training.Progress` callback."""
    if cfg.preset not in PRESETS and cfg.preset not in SMOLLM2_PRESETS:
        raise ValueError(f"unknown preset {cfg.preset!r}; choose one of "
                         f"{sorted(PRESETS) + list(SMOLLM2_PRESETS)}")
    authors, cands = select_authors(cfg.authors, k)
    recipe = _recipe(cfg)
    key = json.dumps({"authors": authors, "recipe": recipe, "seed": cfg.seed,
                      "data": str(Path(cfg.data_dir).resolve())}, sort_keys=True)
    sdir = Path(cfg.out_dir) / f"setup-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    rows = _load_rows(Path(cfg.data_dir) / "full.json")
    records = _author_records(rows, authors)
    holdout = [Example(question=r["question"], answer=r["answer"], record_id=f"holdout01_{i}")
               for i, r in enumerate(_load_rows(Path(cfg.data_dir) / "holdout01.json"))]
    meta = sdir / "setup.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        info["reused"] = True
        log(f"[setup] reusing {sdir}")
        return Setup(sdir, authors, cands, records, holdout, info)
    from unlearning_engine.dp import train_dp_base
    from unlearning_engine.training import train_causal_lm

    sdir.mkdir(parents=True, exist_ok=True)
    corpus = [e for a in authors for e in records[a]]
    t0 = time.perf_counter()
    target_hp = dict(recipe["target"])
    lora = target_hp.pop("lora", None)
    if cfg.preset in SMOLLM2_PRESETS:
        from unlearning_engine.modeling import export_smollm2
        link = sdir / "base"
        if not link.exists():
            link.symlink_to(export_smollm2().resolve(), target_is_directory=True)
    else:
        tok = public_tokenizer(**recipe["tokenizer"])
        save_artifact(build_model(tok, cfg.preset, seed=cfg.seed), tok, sdir / "base")
    model, tok = load_artifact(sdir / "base", cfg.device)
    t1 = time.perf_counter()
    if lora:
        from unlearning_engine.hparams import v_lora
        from unlearning_engine.lora import merge, wrap_lora
        model = wrap_lora(model, v_lora("lora", lora))
    st = train_causal_lm(model, tok, corpus, seed=cfg.seed, phase="target", progress=progress,
                         **target_hp)
    if lora:
        model = merge(model)
    save_artifact(model.cpu(), tok, sdir / "target")
    t2 = time.perf_counter()
    log(f"[setup] target trained in {t2 - t1:.1f}s ({st.steps} steps)")
    ledger = train_dp_base(sdir / "base", corpus, sdir / "dp_base", seed=cfg.seed,
                           device=cfg.device, progress=progress, **recipe["dp_base"])
    t3 = time.perf_counter()
    log(f"[setup] DP base trained in {t3 - t2:.1f}s (eps={ledger.to_dict().get('epsilon')})")
    info = {"dir": str(sdir), "authors": authors, "forget_candidates": cands,
            "records": len(corpus), "holdout_records": len(holdout), "recipe": recipe,
            "seed": cfg.seed, "dp_ledger": ledger.to_dict(),
            "tokenizer_provenance": getattr(tok, "tokenizer_provenance", None),
            "seconds": {"tokenizer_base": round(t1 - t0, 2), "target": round(t2 - t1, 2),
                        "dp_base": round(t3 - t2, 2)}}
    meta.write_text(json.dumps(info, indent=1))
    info["reused"] = False
    return Setup(sdir, authors, cands, records, holdout, info)


# ----------------------------------------------------------------------------- helpers

def _hp(cfg: RunnerConfig, method: str | None = None) -> dict:
    """Hyper-parameter overrides of a run. With ``method`` given, overrides the method does not
    have are left out (``eco`` trains nothing: no ``epochs``, no collapse check)."""
    hp: dict[str, Any] = {"preset": cfg.preset}
    if cfg.unlearn_epochs:
        hp["epochs"] = cfg.unlearn_epochs
    if not cfg.collapse_check:
        hp["collapse_check"] = False
    if cfg.dp2_steps and method == "dp2":
        hp["steps"] = cfg.dp2_steps
    if method is not None:
        from unlearning_engine.methods import get_method
        allowed = get_method(method).defaults
        hp = {k: v for k, v in hp.items() if k in allowed}
    return hp


def _evaluate(path: str, forget, retain, holdout, cfg: RunnerConfig) -> dict:
    model, tok = load_artifact(path, cfg.device)
    return evaluate_qa_model(model, tok, forget=forget, retain=retain, holdout=holdout,
                             profile=cfg.eval_profile())


def _compact(report: dict) -> dict:
    """Report metrics without the per-text score lists (kept small for the series JSON)."""
    out = {}
    for name in _REPORT_METRICS:
        m = dict(report["metrics"][name])
        m["details"] = {k: v for k, v in m.get("details", {}).items() if k != "scores"}
        out[name] = m
    return out


def _retrain_reference(setup: Setup, forgotten: list[int], cfg: RunnerConfig, log=print) -> dict:
    """Exact retrain on corpus minus ``forgotten`` (cached), evaluated on those authors' records.

    Returns ``{"dir", "metrics", "wall_seconds"}``; metrics computed on forget = all of
    ``forgotten``'s records (the scalability forget set)."""
    tag = "retrain-" + "-".join(str(a) for a in sorted(forgotten))
    if cfg.unlearn_epochs:
        tag += f"-e{cfg.unlearn_epochs}"
    rdir = setup.dir / tag
    forget, retain = setup.split(forgotten)
    if not (rdir / "model.safetensors").is_file():
        t = time.perf_counter()
        run_unlearning(UnlearningRequest(method="retrain", model_dir=setup.target,
                                         output_dir=str(rdir), forget=forget, retain=retain,
                                         base_dir=setup.base, hyperparameters=_hp(cfg),
                                         seed=cfg.seed, device=cfg.device))
        log(f"[reference] retrain without authors {sorted(forgotten)}: "
            f"{time.perf_counter() - t:.1f}s")
    return {"dir": str(rdir)}


def _privleak(report: dict, ref_auc: float | None) -> tuple[dict, dict]:
    auc = MetricValue.from_dict(report["metrics"]["mink_auc"])
    metric, block = privleak_metric(auc, ref_auc, "retrain" if ref_auc is not None else None)
    return metric.to_dict(), {"type": block["reference_type"], "auc": block["reference"],
                              "flagged": block["flagged"]}


def _reference_auc(setup: Setup, forgotten: list[int], forget_eval: list[Example],
                   cfg: RunnerConfig, cache: dict, log=print) -> tuple[float | None, dict | None]:
    """Min-K AUC of the retrain reference (without ``forgotten``) on ``forget_eval`` vs holdout;
    ``(None, None)`` with ``--quick``."""
    if cfg.quick:
        return None, None
    key = (tuple(sorted(forgotten)), tuple(e.record_id for e in forget_eval))
    if key not in cache:
        ref = _retrain_reference(setup, forgotten, cfg, log)
        _, retain = setup.split(forgotten)
        rep = _evaluate(ref["dir"], forget_eval, retain, setup.holdout, cfg)
        cache[key] = (rep["metrics"]["mink_auc"]["value"], {"dir": ref["dir"],
                                                              "metrics": _compact(rep)})
    return cache[key]


def _evaluate_step(new_dir: str, setup: Setup, forgotten: list[int], forget, retain,
                   cfg: RunnerConfig, ref_cache: dict, log=print,
                   with_reference_metrics: bool = False) -> tuple[dict, dict]:
    """Compact metrics of an unlearned model plus PrivLeak against the retrain reference for
    ``forgotten`` (or the ideal 0.5 with ``--quick``); returns ``(metrics, privleak_reference)``."""
    rep = _evaluate(new_dir, forget, retain, setup.holdout, cfg)
    ref_auc, ref = _reference_auc(setup, forgotten, forget, cfg, ref_cache, log)
    metrics = _compact(rep)
    metrics["privleak"], pref = _privleak(rep, ref_auc)
    if ref is not None:
        pref["retrain_dir"] = ref["dir"]
        if with_reference_metrics:
            pref["retrain_metrics"] = ref["metrics"]
    return metrics, pref


def _run_method(method: str, model_dir: str, out: Path, forget, retain, setup: Setup,
                cfg: RunnerConfig) -> tuple[dict, str | None]:
    t = time.perf_counter()
    try:
        res = run_unlearning(UnlearningRequest(
            method=method, model_dir=model_dir, output_dir=str(out), forget=forget, retain=retain,
            base_dir=setup.base, dp_base_dir=setup.dp_base, hyperparameters=_hp(cfg, method),
            seed=cfg.seed, device=cfg.device))
    except CollapseError as exc:
        return {"wall_seconds": round(time.perf_counter() - t, 3), "tokens": None, "steps": None,
                "status": f"collapse: {getattr(exc, 'reason', exc)}"}, None
    return {"wall_seconds": round(time.perf_counter() - t, 3), "tokens": res.tokens,
            "steps": res.steps, "status": "ok", "hyperparameters": res.hyperparameters}, \
        res.output_dir


def _environment() -> dict:
    import os

    import torch
    return {"python": platform.python_version(), "torch": torch.__version__,
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _series(kind: str, method: str, cfg: RunnerConfig, setup: Setup, baseline: dict,
            series: list[dict]) -> dict:
    return {"kind": kind, "method": method, "source": SOURCES[kind],
            "profile": cfg.eval_profile().to_dict(), "settings": cfg.to_dict(),
            "setup": setup.info, "baseline": baseline, "series": series,
            "environment": _environment()}


# ----------------------------------------------------------------------------- runners

def run_sustainability(cfg: RunnerConfig, log=print) -> dict[str, dict]:
    """n sequential single-author requests per method on one lineage (MUSE C6).

    Request i (1-based) forgets candidate author i. ``dp2`` restarts from the DP base with the
    cumulative retain set (DP2Unlearning; DESIGN §6.5); other methods continue from the model of
    request i−1 (the target for i = 1) with forget = author i and the cumulative retain set.
    After each request: KnowMem_r (utility), VerbMem_f/KnowMem_f/Min-K AUC on the latest forget
    set and PrivLeak vs holdout (reference: exact retrain without every author forgotten so far,
    or 0.5 flagged ``ideal`` with ``quick``). Writes ``sustainability_<method>.json`` and
    ``sustainability.png``; returns ``{method: series dict}``.
    """
    setup = prepare_setup(cfg, cfg.requests, log)
    out = Path(cfg.out_dir)
    ref_cache: dict = {}
    results = {}
    first_forget, first_retain = setup.split(setup.candidates[:1])
    base_rep = _evaluate(setup.target, first_forget, first_retain, setup.holdout, cfg)
    baseline = {"model": "target", "forget_authors": setup.candidates[:1],
                "metrics": _compact(base_rep)}
    for method in cfg.methods:
        steps = []
        prev = setup.target
        for i in range(cfg.requests):
            author = setup.candidates[i]
            forgotten = setup.candidates[: i + 1]
            forget, retain = setup.split(forgotten, current=[author])
            start = "dp_base" if method == "dp2" else ("target" if i == 0 else "previous")
            run, new_dir = _run_method(method, prev, out / f"sus-{method}" / f"r{i + 1}",
                                       forget, retain, setup, cfg)
            step = {"request": i + 1, "forgotten_authors": list(forgotten),
                    "forgotten_count": len(forgotten), "forget_records": len(forget),
                    "retain_records": len(retain), "start": start, **run}
            if new_dir is None:
                step.update(metrics=None, privleak_reference=None)
                steps.append(step)
                log(f"[sustainability] {method} request {i + 1}: {run['status']}")
                if method == "dp2":  # the next dp2 request restarts from BM anyway
                    continue
                break  # the lineage has no model to continue from
            metrics, pref = _evaluate_step(new_dir, setup, forgotten, forget, retain, cfg,
                                           ref_cache, log)
            step.update(metrics=metrics, privleak_reference=pref, model_dir=new_dir)
            steps.append(step)
            log(f"[sustainability] {method} request {i + 1}: wall {run['wall_seconds']:.1f}s "
                f"KnowMem_r {metrics['knowmem_retain']['value']:.1f} "
                f"PrivLeak {_fmt(metrics['privleak']['value'])} ({pref['type']})")
            prev = new_dir
        doc = _series("sustainability", method, cfg, setup, baseline, steps)
        (out / f"sustainability_{method}.json").write_text(json.dumps(doc, indent=1))
        results[method] = doc
    plot_sustainability(results, out / "sustainability.png")
    return results


def run_scalability(cfg: RunnerConfig, log=print) -> dict[str, dict]:
    """The same method on forget sets of growing size, each from the target (MUSE C5).

    Forget set of size s = the last s authors of the subset (TOFU forget01/05/10 analogues);
    retain = the rest. Per size: wall time, tokens, steps, VerbMem_f, KnowMem_f, KnowMem_r,
    Min-K AUC and PrivLeak (reference: exact retrain for that forget set, or 0.5 flagged
    ``ideal`` with ``quick``). Writes ``scalability_<method>.json`` and ``scalability.png``.
    """
    sizes = sorted(set(int(s) for s in cfg.sizes))
    if not sizes or sizes[0] < 1:
        raise ValueError("sizes must be positive author counts")
    setup = prepare_setup(cfg, sizes[-1], log)
    out = Path(cfg.out_dir)
    ref_cache: dict = {}
    results = {}
    baseline = {"model": "target", "per_size": {}}
    for s in sizes:
        forgotten = setup.candidates[len(setup.candidates) - s:]
        forget, retain = setup.split(forgotten)
        baseline["per_size"][str(s)] = _compact(
            _evaluate(setup.target, forget, retain, setup.holdout, cfg))
    for method in cfg.methods:
        rows = []
        for s in sizes:
            forgotten = setup.candidates[len(setup.candidates) - s:]
            forget, retain = setup.split(forgotten)
            run, new_dir = _run_method(method, setup.target, out / f"scal-{method}" / f"s{s}",
                                       forget, retain, setup, cfg)
            row = {"forget_authors": list(forgotten), "forget_count": s,
                   "forget_records": len(forget), "retain_records": len(retain), **run}
            if new_dir is None:
                row.update(metrics=None, privleak_reference=None)
            else:
                metrics, pref = _evaluate_step(new_dir, setup, forgotten, forget, retain, cfg,
                                               ref_cache, log, with_reference_metrics=True)
                row.update(metrics=metrics, privleak_reference=pref, model_dir=new_dir)
            rows.append(row)
            log(f"[scalability] {method} size {s}: {run['status']} wall {run['wall_seconds']:.1f}s "
                f"tokens {run['tokens']}")
        doc = _series("scalability", method, cfg, setup, baseline, rows)
        (out / f"scalability_{method}.json").write_text(json.dumps(doc, indent=1))
        results[method] = doc
    plot_scalability(results, out / "scalability.png")
    return results


# ----------------------------------------------------------------------------- plots

def _fmt(v) -> str:
    return "undef" if v is None else f"{v:.1f}"


def _val_err(metric: dict | None):
    if not metric or metric.get("value") is None:
        return float("nan"), (0.0, 0.0)
    v = metric["value"]
    ci = metric.get("ci95")
    if not ci:
        return v, (0.0, 0.0)
    return v, (max(v - ci[0], 0.0), max(ci[1] - v, 0.0))


def _errorbar(ax, xs, metrics, label):
    vals, lo, hi = [], [], []
    for m in metrics:
        v, (a, b) = _val_err(m)
        vals.append(v)
        lo.append(a)
        hi.append(b)
    ax.errorbar(xs, vals, yerr=[lo, hi], marker="o", capsize=3, label=label)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_sustainability(results: dict[str, dict], path: Path) -> None:
    """Utility (KnowMem_r) and PrivLeak vs request number, one line per method (95% CIs)."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for method, doc in results.items():
        steps = [s for s in doc["series"] if s.get("metrics")]
        xs = [s["request"] for s in steps]
        _errorbar(a1, xs, [s["metrics"]["knowmem_retain"] for s in steps], method)
        kind = steps[0]["privleak_reference"]["type"] if steps else "?"
        _errorbar(a2, xs, [s["metrics"]["privleak"] for s in steps], f"{method} (ref {kind})")
    # utility axis from 0 (ROUGE-L ×100 runs 0–100): a few points' change must not look like a collapse
    a1.set(xlabel="request", ylabel="KnowMem_r (ROUGE-L ×100)", title="Utility", ylim=(0, 100))
    a2.axhspan(-5, 5, color="green", alpha=0.1)
    a2.set(xlabel="request", ylabel="PrivLeak (%)", title="PrivLeak of latest forget set")
    from matplotlib.ticker import MaxNLocator
    for a in (a1, a2):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.suptitle("Sustainability (MUSE C6)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_scalability(results: dict[str, dict], path: Path) -> None:
    """Cost (wall seconds, tokens) and forget/retain metrics vs forget size, one line per method."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    tax = axes[0].twinx()
    for method, doc in results.items():
        rows = doc["series"]
        xs = [r["forget_count"] for r in rows]
        axes[0].plot(xs, [r["wall_seconds"] for r in rows], marker="o", label=f"{method} wall s")
        tax.plot(xs, [r["tokens"] or 0 for r in rows], ls="--", marker="x",
                 label=f"{method} tokens")
        ok = [r for r in rows if r.get("metrics")]
        oxs = [r["forget_count"] for r in ok]
        _errorbar(axes[1], oxs, [r["metrics"]["knowmem_retain"] for r in ok], f"{method} KnowMem_r")
        _errorbar(axes[1], oxs, [r["metrics"]["knowmem_forget"] for r in ok], f"{method} KnowMem_f")
        _errorbar(axes[1], oxs, [r["metrics"]["verbmem_forget"] for r in ok], f"{method} VerbMem_f")
        _errorbar(axes[2], oxs, [r["metrics"]["privleak"] for r in ok], method)
    axes[0].set(xlabel="forget size (authors)", ylabel="wall seconds", title="Cost")
    tax.set_ylabel("tokens")
    axes[0].legend(fontsize=8, loc="upper left")
    tax.legend(fontsize=8, loc="lower right")
    axes[1].set(xlabel="forget size (authors)", ylabel="ROUGE-L ×100", title="Memorisation / utility")
    axes[2].axhspan(-5, 5, color="green", alpha=0.1)
    axes[2].set(xlabel="forget size (authors)", ylabel="PrivLeak (%)", title="PrivLeak")
    for a in axes[1:]:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.suptitle("Scalability (MUSE C5)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.runners",
                                 description="Scalability / sustainability runners (MUSE C5/C6).")
    ap.add_argument("kind", choices=("scalability", "sustainability"))
    ap.add_argument("--method", action="append", dest="methods", required=True,
                    help="unlearning method (repeatable)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--authors", type=int, default=12, help="TOFU authors in the subset")
    ap.add_argument("--preset", choices=sorted(PRESETS) + list(SMOLLM2_PRESETS), default="tiny")
    ap.add_argument("--requests", type=int, default=4, help="sustainability: number of requests")
    ap.add_argument("--sizes", default="1,2,4", help="scalability: forget sizes in authors")
    ap.add_argument("--quick", action="store_true",
                    help="no retrain reference: PrivLeak vs the ideal AUC 0.5 (flagged)")
    ap.add_argument("--data", default=TOFU_DIR, help="TOFU directory (full.json, holdout01.json)")
    ap.add_argument("--target-epochs", type=int, default=None)
    ap.add_argument("--dp-base-epochs", type=int, default=None)
    ap.add_argument("--unlearn-epochs", type=int, default=None,
                    help="epochs of the unlearning method and of the retrain reference")
    ap.add_argument("--dp2-steps", type=int, default=None,
                    help="dp2's budget in optimizer steps instead of epochs (same steps for every request)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-collapse-check", action="store_true",
                    help="disable the methods' collapse check (under-trained test models)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (1 avoids oversubscription on shared cores)")
    return ap


def config_from_args(args: argparse.Namespace) -> RunnerConfig:
    return RunnerConfig(out_dir=args.out, methods=list(args.methods), authors=args.authors,
                        preset=args.preset, requests=args.requests,
                        sizes=tuple(int(s) for s in args.sizes.split(",") if s.strip()),
                        quick=args.quick, data_dir=args.data, target_epochs=args.target_epochs,
                        dp_base_epochs=args.dp_base_epochs, unlearn_epochs=args.unlearn_epochs,
                        dp2_steps=args.dp2_steps, device=args.device, seed=args.seed,
                        collapse_check=not args.no_collapse_check)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runner = run_scalability if args.kind == "scalability" else run_sustainability
    results = runner(cfg, log=lambda m: print(m, flush=True))
    print(json.dumps({"kind": args.kind, "methods": list(results), "out": cfg.out_dir,
                      "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
