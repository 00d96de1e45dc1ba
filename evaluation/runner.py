"""Command-line evaluation of a saved model with the MUSE-News or a TOFU profile (``tofu``: the
benchmark code's conventions; ``tofu_paper``: the paper's literal formulas).

``python -m evaluation --model DIR --profile muse_news|tofu|tofu_paper [--reference-auc X | --retrained
DIR_OR_REPORT] [--limit N] [--set FIELD=VALUE ...] [--out report.json]``; with ``--profile restor``
``--model`` is the *clean* model and the RESTOR protocol runs end to end (corruption, every method,
figure ``<out>.png``; :mod:`evaluation.restor_runner`). ``manage.py evaluate`` calls
:func:`run_evaluation` with the same arguments (:func:`add_arguments`). No Django here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from .datafiles import default_data_dir

__all__ = [
    "PROFILES",
    "load_model",
    "make_profile",
    "parse_overrides",
    "run_evaluation",
    "format_table",
    "add_arguments",
    "run_from_args",
    "main",
]

PROFILES = ("muse_news", "tofu", "tofu_paper", "restor")
_DATA_NAMES = {"muse_news": "muse_news", "tofu": "tofu", "tofu_paper": "tofu", "restor": "tofu"}


def load_model(model_dir: str | Path):
    """``(model, tokenizer, info)`` from a ``save_pretrained`` directory, offline.

    Uses ``unlearning_engine.modeling.load_artifact``; if it is missing or fails, falls back
    to ``AutoModelForCausalLM.from_pretrained(dir, local_files_only=True)`` +
    ``AutoTokenizer``. ``info = {"dir", "loader", "weights_sha256"?, "load_artifact_error"?}``.
    Raises the fallback's exception when both fail.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    info: dict[str, Any] = {"dir": str(model_dir)}
    try:
        from unlearning_engine.modeling import load_artifact

        model, tok = load_artifact(model_dir)
        info["loader"] = "unlearning_engine.modeling.load_artifact"
    except Exception as exc:  # noqa: BLE001 - any failure: use the plain transformers loader
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        info["load_artifact_error"] = f"{type(exc).__name__}: {exc}"
        tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(model_dir), local_files_only=True, dtype=torch.float32
        ).eval()
        info["loader"] = "transformers.AutoModelForCausalLM"
    weights = Path(model_dir) / "model.safetensors"
    if weights.is_file():
        from .datafiles import file_sha256

        info["weights_sha256"] = file_sha256(weights)
    return model, tok, info


def _profile_class(profile: str):
    if profile == "muse_news":
        from .muse import MuseNewsProfile

        return MuseNewsProfile
    from .tofu import TofuProfile

    return TofuProfile


def _is_tofu(profile: str) -> bool:
    return profile in ("tofu", "tofu_paper")


#: Settings that change the per-question truth ratios (Forget Quality needs them equal).
_TOFU_SCORING_KEYS = ("name", "truth_ratio_mean", "score_eos", "question_template",
                      "answer_prefix", "scoring_max_length", "truth_ratio_base")

_PROTECTED = {"name", "revision", "benchmark", "data_dir", "rouge", "splits", "context_length", "tokenizer_name",
              "tokenizer_vocab_digest", "library_versions"}


def make_profile(profile: str, *, limit=None, seed=0, bootstrap_resamples=1000,
                 forget_split="forget01", overrides: dict | None = None):
    """The settings object of ``profile`` (:class:`~evaluation.muse.MuseNewsProfile`, or the
    :class:`~evaluation.tofu.TofuProfile` named ``"tofu"`` / ``"tofu_paper"``, see
    :func:`evaluation.tofu.tofu_profile`) with ``overrides`` ({field: value}, e.g.
    ``{"verbmem_max_new_tokens": 64}``) applied. ``limit=None`` keeps the profile's own
    (TOFU: ``tofu`` the first 300 rows, ``tofu_paper`` all rows; ``--set limit=null`` for
    all rows). Raises ``ValueError`` for an unknown or computed field."""
    cls = _profile_class(profile)
    kw: dict[str, Any] = {"seed": seed, "bootstrap_resamples": bootstrap_resamples}
    if limit is not None or not _is_tofu(profile):
        kw["limit"] = limit
    if _is_tofu(profile):
        kw["forget_split"] = forget_split
    names = {f.name for f in dataclasses.fields(cls)} - _PROTECTED
    for k, v in (overrides or {}).items():
        if k not in names:
            raise ValueError(f"unknown or computed {cls.__name__} field {k!r}")
        kw[k] = tuple(v) if isinstance(v, list) else v
    if _is_tofu(profile):
        from .tofu import tofu_profile

        return tofu_profile(profile, **kw)
    return cls(**kw)


def _evaluate(model, tok, profile: str, data_dir: Path, settings, **ref) -> dict:
    if profile == "muse_news":
        from .muse import evaluate_muse_news

        ref.pop("retrained_truth_ratios", None)
        return evaluate_muse_news(model, tok, data_dir, profile=settings, **ref)
    from .tofu import evaluate_tofu

    return evaluate_tofu(model, tok, data_dir, profile=settings, **ref)


def _reference_warnings(report: dict, retrained_report: dict, profile: str) -> list[str]:
    """Why the retrained reference is not like-for-like: other rows or files of the forget /
    holdout splits, or (TOFU) another profile's truth-ratio settings."""
    out = []
    keys = ("privleak_forget", "privleak_holdout") if profile == "muse_news" else (
        "forget", "holdout")
    mine = report["profile"].get("splits") or {}
    theirs = (retrained_report.get("profile") or {}).get("splits") or {}
    differ = [k for k in keys if (mine.get(k) or {}).get("indices_sha256") != (
        theirs.get(k) or {}).get("indices_sha256") or (mine.get(k) or {}).get("sha256")
        != (theirs.get(k) or {}).get("sha256")]
    if differ:
        out.append("the retrained reference was evaluated on different rows or files for "
                   f"{', '.join(differ)}: its AUC / truth ratios are not a like-for-like reference")
    if _is_tofu(profile):
        mp, tp = report["profile"], retrained_report.get("profile") or {}
        changed = [k for k in _TOFU_SCORING_KEYS if mp.get(k) != tp.get(k)]
        if changed:
            out.append(f"the retrained reference was evaluated with TOFU profile {tp.get('name')!r}"
                       f" (differs in {', '.join(changed)}): its truth ratios are not comparable "
                       "and Forget Quality mixes two definitions")
    return out


def run_evaluation(
    model_dir: str | Path,
    profile: str = "muse_news",
    *,
    data_dir: str | Path | None = None,
    reference_auc: float | None = None,
    retrained: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    bootstrap_resamples: int = 1000,
    forget_split: str = "forget01",
    overrides: dict | None = None,
    out: str | Path | None = None,
) -> dict:
    """Evaluate the model saved in ``model_dir`` and return (and optionally write) the report.

    Args:
        profile: ``"muse_news"`` (:func:`evaluation.muse.evaluate_muse_news`), ``"tofu"`` or
            ``"tofu_paper"`` (:func:`evaluation.tofu.evaluate_tofu`).
        data_dir: benchmark directory; default ``<repo>/../shared/data/<muse_news|tofu>``.
        reference_auc: supplied PrivLeak reference AUC (``reference_type="supplied"``).
        retrained: an exact-retrain model directory (evaluated first with the same profile,
            limits and seed; its Min-K% AUC is the PrivLeak reference and, for TOFU, its
            forget truth ratios give Forget Quality) or a JSON report file of such a model.
            Mutually exclusive with ``reference_auc``.
        limit: at most N rows per split (seeded sample; ``tofu``: the first N), recorded in the
            profile; ``None`` = the profile's default.
        overrides: other profile settings, see :func:`make_profile`.

    Returns the profile's report plus ``"model": load info`` and, with ``retrained``,
    ``"retrained": its report`` (a report file is embedded as given) and, when that report
    was computed on other rows or files of the forget/holdout splits, ``"warnings"``. Raises ``ValueError``
    for an unknown profile, both references, or a reference AUC outside (0, 1].
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile == "restor":
        if reference_auc is not None or retrained is not None:
            raise ValueError("the restor profile trains its own retrain reference (from the clean model); "
                             "--reference-auc / --retrained do not apply")
        return _run_restor(model_dir, data_dir=data_dir, limit=limit, seed=seed, overrides=overrides, out=out)
    if reference_auc is not None and retrained is not None:
        raise ValueError("give either reference_auc or retrained, not both")
    if reference_auc is not None and not (
        math.isfinite(reference_auc) and 0.0 < reference_auc <= 1.0
    ):
        raise ValueError(f"reference AUC must be in (0, 1], got {reference_auc}")
    data = Path(data_dir) if data_dir else default_data_dir(_DATA_NAMES[profile])
    t0 = time.perf_counter()
    settings = make_profile(profile, limit=limit, seed=seed,
                            bootstrap_resamples=bootstrap_resamples,
                            forget_split=forget_split, overrides=overrides)
    ref: dict[str, Any] = {"reference_auc": reference_auc,
                           "reference_type": "supplied" if reference_auc is not None else None}
    retrained_report = None
    if retrained is not None:
        rp = Path(retrained)
        if rp.is_file():
            retrained_report = json.loads(rp.read_text(encoding="utf-8"))
        else:
            r_model, r_tok, r_info = load_model(rp)
            retrained_report = _evaluate(r_model, r_tok, profile, data, settings, **dict(ref))
            retrained_report["model"] = r_info
            del r_model
        auc = ((retrained_report.get("metrics") or {}).get("mink_auc") or {})
        if auc.get("status", "ok") == "ok" and isinstance(auc.get("value"), (int, float)) \
                and auc["value"] > 0:
            ref.update(reference_auc=float(auc["value"]), reference_type="retrain")
        if _is_tofu(profile):
            trs = (retrained_report.get("tofu") or {}).get("forget_truth_ratios")
            ref["retrained_truth_ratios"] = trs
    model, tok, info = load_model(model_dir)
    report = _evaluate(model, tok, profile, data, settings, **ref)
    report = {"model": info, **report}
    if retrained_report is not None:
        report["retrained"] = retrained_report
        for w in _reference_warnings(report, retrained_report, profile):
            report.setdefault("warnings", []).append(w)
    report["timing"]["wall_seconds_including_reference"] = round(time.perf_counter() - t0, 3)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False)
                             + "\n", encoding="utf-8")
    return report


def _run_restor(model_dir, *, data_dir, limit, seed, overrides, out) -> dict:
    """``--profile restor``: ``model_dir`` is the *clean* model; runs the whole RESTOR protocol
    (:func:`evaluation.restor_runner.run_restor`); ``limit`` = ``n_facts``; trained models go to
    ``<out stem>-models/`` (``var/restor-models/`` without ``--out``), the figure to
    ``<out stem>.png``."""
    from .restor_runner import profile_from, run_restor

    ov = dict(overrides or {})
    ov.setdefault("seed", seed)
    if limit is not None:
        ov["n_facts"] = limit
    if data_dir:
        ov["data_dir"] = str(data_dir)
    settings = profile_from(ov)
    if not (Path(model_dir) / "model.safetensors").is_file():
        raise FileNotFoundError(f"{model_dir} is not a model directory (no model.safetensors)")
    work = Path(out).with_name(Path(out).stem + "-models") if out else Path("var") / "restor-models"
    return run_restor(model_dir, settings, work, out=out, log=lambda m: print(m, file=sys.stderr, flush=True))


_ROWS = {
    "muse_news": [
        ("VerbMem_f", "verbmem_forget", "{:.2f}"),
        ("KnowMem_f", "knowmem_forget", "{:.2f}"),
        ("KnowMem_r", "knowmem_retain", "{:.2f}"),
        ("PrivLeak", "privleak", "{:+.2f}"),
        ("ExactMem", "exact_memorisation", "{:.3f}"),
        ("MinK AUC", "mink_auc", "{:.4f}"),
        ("Loss AUC", "loss_auc", "{:.4f}"),
        ("zlib AUC", "zlib_auc", "{:.4f}"),
        ("PPL/lower AUC", "ppl_lower_auc", "{:.4f}"),
        ("MinK++ AUC", "minkpp_auc", "{:.4f}"),
    ],
}
_ROWS["tofu"] = _ROWS["muse_news"][:4] + [
    ("ForgetQuality", "forget_quality", "{:.4g}"),
    ("ModelUtility", "model_utility", "{:.4f}"),
    ("TruthRatio_f", "truth_ratio_forget", "{:.4f}"),
    ("TruthRatio_r", "truth_ratio_retain", "{:.4f}"),
    ("Prob_r", "probability_retain", "{:.4f}"),
    ("ROUGE-R_r", "rouge_recall_retain", "{:.4f}"),
] + _ROWS["muse_news"][5:]


def _fmt_n(n) -> str:
    if isinstance(n, dict):
        return ",".join(f"{k}={v}" for k, v in n.items())
    return str(n)


def format_table(report: dict) -> str:
    """Plain-text table: metric, value, 95% CI, n (or the reason when undefined)."""
    name = (report.get("profile") or {}).get("name", "")
    if name == "restor":
        from .restor_runner import format_restor_table

        return format_restor_table(report)
    kind = "tofu" if name.startswith("tofu") else "muse_news"
    lines = [f"{'metric':<14} {'value':>10}  {'95% CI':<23} n"]
    for label, key, fmt in _ROWS[kind]:
        m = (report.get("metrics") or {}).get(key)
        if m is None:
            continue
        if m.get("status") != "ok" or m.get("value") is None:
            lines.append(f"{label:<14} {'undefined':>10}  ({m.get('reason')})")
            continue
        ci = m.get("ci95")
        ci_s = "" if not ci else "[" + fmt.format(ci[0]) + ", " + fmt.format(ci[1]) + "]"
        lines.append(f"{label:<14} {fmt.format(m['value']):>10}  {ci_s:<23} {_fmt_n(m.get('n'))}")
    pl = report.get("privleak") or {}
    if pl:
        lines.append(f"PrivLeak reference: {pl.get('reference_type')} AUC "
                     f"{pl.get('reference')}" + (" (flagged)" if pl.get("flagged") else ""))
    prof = report.get("profile") or {}
    lines.append(f"profile {prof.get('name')} limit={prof.get('limit')} seed={prof.get('seed')}")
    for w in report.get("warnings") or []:
        lines.append(f"WARNING: {w}")
    trunc = report.get("truncation")
    if trunc:
        lines.append("truncated: " + ", ".join(
            f"{k}={v.get('truncated')}/{v.get('n')}" for k, v in trunc.items()))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``python -m evaluation`` and ``manage.py evaluate``."""
    parser.add_argument("--model", required=True, help="model directory (save_pretrained)")
    parser.add_argument("--profile", choices=PROFILES, default="muse_news")
    ref = parser.add_mutually_exclusive_group()
    ref.add_argument("--reference-auc", type=float, default=None,
                     help="supplied PrivLeak reference AUC in (0, 1]")
    ref.add_argument("--retrained", default=None,
                     help="exact-retrain model directory, or its JSON report")
    parser.add_argument("--limit", type=int, default=None, help="at most N rows per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--forget-split", default="forget01",
                        choices=("forget01", "forget05", "forget10"), help="TOFU forget split")
    parser.add_argument("--data-dir", default=None,
                        help="benchmark directory (default ../shared/data/<profile>)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a profile setting (VALUE as JSON, else a string), "
                             "e.g. --set verbmem_max_new_tokens=64; repeatable")
    parser.add_argument("--out", default=None, help="write the JSON report here")


def parse_overrides(items) -> dict:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}`` (values parsed as JSON when possible).
    Raises ``ValueError`` for an item without ``=``."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def run_from_args(ns, write=print) -> dict:
    """Run :func:`run_evaluation` from parsed arguments and ``write`` the table."""
    report = run_evaluation(
        ns.model, ns.profile, data_dir=ns.data_dir, reference_auc=ns.reference_auc,
        retrained=ns.retrained, limit=ns.limit, seed=ns.seed,
        bootstrap_resamples=ns.bootstrap, forget_split=ns.forget_split,
        overrides=parse_overrides(getattr(ns, "set", None)), out=ns.out,
    )
    write(format_table(report))
    if ns.out:
        write(f"report written to {ns.out}")
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m evaluation``; returns the exit status (2 on bad input)."""
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__)
    add_arguments(parser)
    ns = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # e.g. "sequence longer than model_max_length": we truncate
    if ns.limit is not None and ns.limit < 0:
        parser.error("--limit must be >= 0")
    try:
        run_from_args(ns)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
