"""MUSE-News evaluation profile (MUSE, Shi et al., arXiv 2407.06460, §3 and §4).

Files (read at run time from ``data_dir``, DESIGN §10; never copied into reports):

- ``verbmem/forget.json``: JSON array of ``{"prompt", "gt"}`` (VerbMem, criterion C1).
- ``knowmem/forget_qa.json``, ``knowmem/retain2_qa.json``: ``{"question", "answer"}``
  (KnowMem C2 and utility C4), with the few-shot examples ``knowmem/*_qa_icl.json``.
- ``privleak/forget.json``, ``privleak/holdout.json``: JSON arrays of text chunks (PrivLeak C3).

Metrics (all with sample sizes and 95% percentile-bootstrap CIs, DESIGN §7):

- ``verbmem_forget``: greedy continuation (``verbmem_max_new_tokens`` = 128 new tokens, no
  stop strings) of each prompt; ROUGE-L F1 against the gt cut to its first 128 ids tokenized
  with special tokens, which are then dropped (:func:`verbmem_reference`: BOS + 127 tokens with
  a BOS-adding tokenizer, as MUSE's code does); mean × 100 (MUSE §3, C1). ROUGE uses
  ``rouge_score``'s default tokenizer unless ``rouge_tokenizer="unicode-v1"``.
- ``knowmem_forget`` / ``knowmem_retain``: 10-shot prompt (:func:`knowmem_prompt`), greedy
  32 new tokens, cut at ``\\n\\n``, ``\\nQuestion``, ``Question:``; ROUGE-L F1 against the
  answer; mean × 100 (MUSE §3, C2 / C4).
- ``exact_memorisation``: see :func:`exact_memorised`; a fraction in [0, 1].
- ``mink_auc`` (Min-K% k = 0.4), ``loss_auc``, ``zlib_auc``, ``ppl_lower_auc`` (MUSE's
  ``PPL/lower``: loss of the text / loss of its lower-cased copy), ``minkpp_auc`` (Min-K%++,
  arXiv 2404.02936 §3): AUC = P(s_holdout < s_forget) (MUSE orientation; memorised ≈ 0,
  ideal ≈ 0.5), see :mod:`evaluation.mia`.
- ``privleak``: (AUC − AUC_ref)/AUC_ref × 100 with AUC_ref = retrain / supplied / 0.5
  ``ideal`` (MUSE §3 C3; :func:`evaluation.mia.privleak_metric`).

Context: prompts longer than ``context − max_new_tokens`` tokens are truncated from the
**left** (the end of the prompt is kept) and PrivLeak texts longer than the context are
truncated from the right (their start is kept, as :func:`evaluation.scoring.token_statistics`
does); both are counted in the report's ``truncation`` block.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unlearning_engine.data import normalise_text

from ._common import encode, max_positions
from .datafiles import read_records, sample_indices, split_record
from .generation import KNOWMEM_STOP_STRINGS, Generation, greedy_generate_detailed
from .mia import privleak_metric
from .report import (
    _degenerate_summary,
    library_versions,
    membership_metrics,
    tokenizer_vocab_digest,
)
from .rouge import DEFAULT_ROUGE_TOKENIZER, rouge_l_f1, rouge_settings
from .stats import MetricValue, bootstrap_mean_ci

__all__ = [
    "MUSE_FILES",
    "KNOWMEM_SHOT_TEMPLATE",
    "KNOWMEM_QUERY_TEMPLATE",
    "MuseNewsProfile",
    "knowmem_prompt",
    "first_tokens_text",
    "verbmem_reference",
    "exact_memorised",
    "evaluate_muse_news",
]

#: Relative paths of the MUSE-News files used by the profile.
MUSE_FILES: dict[str, str] = {
    "verbmem_forget": "verbmem/forget.json",
    "knowmem_forget": "knowmem/forget_qa.json",
    "knowmem_forget_icl": "knowmem/forget_qa_icl.json",
    "knowmem_retain": "knowmem/retain2_qa.json",
    "knowmem_retain_icl": "knowmem/retain2_qa_icl.json",
    "privleak_forget": "privleak/forget.json",
    "privleak_holdout": "privleak/holdout.json",
}

KNOWMEM_SHOT_TEMPLATE = "Question: {question}\nAnswer: {answer}\n\n"
KNOWMEM_QUERY_TEMPLATE = "Question: {question}\nAnswer: "


def knowmem_prompt(shots: Sequence[tuple[str, str]], question: str) -> str:
    """MUSE KnowMem few-shot prompt (arXiv 2407.06460 §3 C2; DESIGN §7).

    ``"".join("Question: {q}\\nAnswer: {a}\\n\\n" for each shot) + "Question: {q}\\nAnswer: "``.
    Example: one shot (``"Q1"``, ``"A1"``) and question ``"Q2"`` →
    ``"Question: Q1\\nAnswer: A1\\n\\nQuestion: Q2\\nAnswer: "``.
    """
    head = "".join(KNOWMEM_SHOT_TEMPLATE.format(question=q, answer=a) for q, a in shots)
    return head + KNOWMEM_QUERY_TEMPLATE.format(question=question)


def first_tokens_text(tokenizer, text: str, n: int) -> tuple[str, int]:
    """``(prefix, k)``: the text of the first ``k = min(n, len(tokens))`` tokens of ``text``
    tokenized alone (no special tokens). The prefix is an exact substring of ``text`` taken
    from the offset mapping (end offset of token k); tokenizers without offsets fall back to
    decoding the ids."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        k = min(n, len(offsets))
        if k == len(offsets):
            return text, k
        return text[: offsets[k - 1][1]] if k else "", k
    except (NotImplementedError, KeyError, TypeError):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        k = min(n, len(ids))
        return tokenizer.decode(ids[:k], skip_special_tokens=True), k


def verbmem_reference(tokenizer, gt: str, n: int) -> tuple[str, int]:
    """MUSE's VerbMem reference (arXiv 2407.06460 §3 C1, as the benchmark's code builds it):
    ``gt`` tokenized *with* the tokenizer's special tokens, cut to its first ``n`` ids, special
    tokens dropped. With a tokenizer that adds BOS (Llama-2) that is BOS + the first n − 1 real
    tokens; without one (GPT-2, SmolLM2) the first n real tokens.

    Returns ``(text, k)``: the exact substring of ``gt`` spanned by its first ``k`` real tokens
    (:func:`first_tokens_text`), k = the number of non-special ids among the first ``n``.
    """
    ids = tokenizer(gt, add_special_tokens=True)["input_ids"][:n]
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    k = sum(i not in special for i in ids)
    return first_tokens_text(tokenizer, gt, k)


def _squash(s: str) -> str:
    return "".join(s.split())


def exact_memorised(continuation: str, gt_prefix: str) -> bool | None:
    """Exact memorisation of one VerbMem item.

    Definition (this project; the exact-match rate of Carlini et al. "Quantifying
    Memorization Across Neural Language Models", arXiv 2202.07646 §2, applied to MUSE's
    VerbMem prompt/gt pairs): with ``gt_prefix`` = the text of the first N tokens of the gt
    (:func:`first_tokens_text`, N = ``exact_memorisation_tokens``, default 32; fewer when the
    gt is shorter) and ``continuation`` = the greedy continuation of the prompt (decoded,
    up to EOS, not stripped), the item is memorised iff, after deleting every whitespace
    character from both, the continuation starts with the gt prefix. Whitespace is ignored
    because the prompt/gt split falls inside words and tokenizers decode leading spaces
    differently. Returns ``None`` (item excluded) when the gt prefix has no
    non-whitespace character.
    """
    ref = _squash(gt_prefix)
    if not ref:
        return None
    return _squash(continuation).startswith(ref)


@dataclass(frozen=True)
class MuseNewsProfile:
    """Pinned settings of the MUSE-News profile (written into every report; DESIGN §7).

    ``tokenizer_name``, ``tokenizer_vocab_digest``, ``context_length``, ``splits`` and
    ``library_versions`` are filled in by :func:`evaluate_muse_news`.
    ``limit``: at most this many rows per split (seeded sample, :func:`sample_indices`),
    ``None`` = all rows. The ICL shot files are never subsampled.
    """

    name: str = "muse-news-v1"
    benchmark: str = "MUSE-News (arXiv 2407.06460)"
    data_dir: str | None = None
    limit: int | None = None
    seed: int = 0
    tokenizer_name: str | None = None
    tokenizer_vocab_digest: str | None = None
    dtype: str = "fp32"
    #: ``"rouge_score-default"`` (the benchmark's tokenizer, MUSE's published numbers) or
    #: ``"unicode-v1"`` for non-Latin corpora (:data:`evaluation.rouge.ROUGE_TOKENIZERS`).
    #: ``rouge`` is derived from it (name + description pinned into the report/certificate).
    rouge_tokenizer: str = DEFAULT_ROUGE_TOKENIZER
    rouge: dict = field(default_factory=lambda: rouge_settings(DEFAULT_ROUGE_TOKENIZER))
    decoding: str = "greedy"
    verbmem_max_new_tokens: int = 128
    verbmem_reference: str = ("gt tokenized with special tokens, cut to verbmem_max_new_tokens "
                              "ids, special tokens dropped (BOS + n-1 tokens with a BOS tokenizer)")
    knowmem_max_new_tokens: int = 32
    knowmem_shots: int = 10
    knowmem_shot_template: str = KNOWMEM_SHOT_TEMPLATE
    knowmem_query_template: str = KNOWMEM_QUERY_TEMPLATE
    knowmem_stop_strings: tuple[str, ...] = KNOWMEM_STOP_STRINGS
    exact_memorisation_tokens: int = 32
    mink_k: float = 0.4
    mia_min_size: int = 5
    privleak_band: float = 5.0
    generation_batch_size: int = 8
    scoring_batch_size: int = 1
    bootstrap_resamples: int = 1000
    ci_level: float = 0.95
    ci_method: str = "percentile bootstrap"
    degenerate_min_tokens: int = 4
    context_length: int | None = None
    prompt_truncation: str = "left (keep the end) to context - max_new_tokens"
    text_truncation: str = "right (keep the start) to the context length"
    splits: dict = field(default_factory=dict)
    library_versions: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _prompt_truncation(tokenizer, prompts: Sequence[str], ctx: int | None, max_new: int) -> dict:
    limit = None if ctx is None else max(1, ctx - max_new)
    lengths = [len(encode(tokenizer, p)) for p in prompts]
    return {
        "n": len(prompts),
        "truncated": 0 if limit is None else sum(n > limit for n in lengths),
        "max_prompt_tokens": limit,
        "longest_prompt_tokens": max(lengths, default=0),
    }


def _rouge_metric(scores: Sequence[float], profile: MuseNewsProfile, reason: str) -> MetricValue:
    if not scores:
        return MetricValue.undefined(reason)
    return bootstrap_mean_ci(
        scores, n_resamples=profile.bootstrap_resamples, seed=profile.seed, scale=100.0
    )


def _load_split(data_dir: Path, key: str, profile: MuseNewsProfile, sample: bool = True):
    path = data_dir / MUSE_FILES[key]
    rows = read_records(path)
    idx = sample_indices(len(rows), profile.limit if sample else None, profile.seed, key)
    return [rows[i] for i in idx], split_record(path, len(rows), idx)


def _qa_pairs(rows: Sequence[Any], key: str) -> list[tuple[str, str]]:
    out = []
    for r in rows:
        if not (isinstance(r, dict) and isinstance(r.get("question"), str)
                and isinstance(r.get("answer"), str)):
            raise ValueError(f"{MUSE_FILES[key]}: rows must be objects with question/answer")
        out.append((r["question"], r["answer"]))
    return out


def evaluate_muse_news(
    model,
    tokenizer,
    data_dir: str | Path,
    *,
    profile: MuseNewsProfile | None = None,
    reference_auc: float | None = None,
    reference_type: str | None = None,
) -> dict:
    """Evaluate one causal LM with the MUSE-News profile (arXiv 2407.06460 §3–§4).

    Args:
        model: a ``transformers`` causal LM; set to ``eval()`` and cast to float32 in place.
        tokenizer: its tokenizer.
        data_dir: directory with the :data:`MUSE_FILES` layout.
        profile: settings (:class:`MuseNewsProfile`; ``limit``/``seed`` choose the sample).
        reference_auc: Min-K% AUC of the reference model on the same texts for PrivLeak;
            ``reference_type`` says what it is (``"retrain"`` for an exact retrain measured
            with the same profile, else ``"supplied"``). ``None`` → 0.5, flagged ``ideal``.

    Returns a JSON-ready dict::

        {"profile": MuseNewsProfile.to_dict(),
         "metrics": {"verbmem_forget", "knowmem_forget", "knowmem_retain",
                     "exact_memorisation", "mink_auc", "loss_auc", "zlib_auc",
                     "ppl_lower_auc", "minkpp_auc", "privleak": MetricValue.to_dict()},
         "privleak": {"value", "ci95", "auc", "reference", "reference_type", "flagged", "band"},
         "degenerate": {"verbmem_forget"|"knowmem_forget"|"knowmem_retain"|"all": {...}},
         "truncation": {"verbmem_prompts"|"knowmem_forget_prompts"|"knowmem_retain_prompts":
                            {"n", "truncated", "max_prompt_tokens", "longest_prompt_tokens"},
                        "privleak_texts": {"n", "truncated", "max_tokens"}},
         "timing": {"generation_seconds" (= verbmem_seconds + knowmem_seconds, with data
                    loading), "verbmem_seconds", "knowmem_seconds", "scoring_seconds",
                    "total_seconds"}}

    Metric names match :func:`evaluation.report.evaluate_qa_model`, so
    :func:`evaluation.verdicts.compute_verdicts` applies unchanged. Empty or too-small
    splits give ``undefined`` metrics with a reason. Raises ``FileNotFoundError`` for a
    missing file and ``ValueError`` for malformed rows.
    """
    t0 = time.perf_counter()
    profile = profile or MuseNewsProfile()
    data_dir = Path(data_dir)
    if any(p.dtype != torch.float32 for p in model.parameters()):
        model.float()
    model.eval()
    ctx = max_positions(model)

    splits: dict[str, dict] = {}
    verb_rows, splits["verbmem_forget"] = _load_split(data_dir, "verbmem_forget", profile)
    km: dict[str, list[tuple[str, str]]] = {}
    shots: dict[str, list[tuple[str, str]]] = {}
    for split in ("knowmem_forget", "knowmem_retain"):
        rows, splits[split] = _load_split(data_dir, split, profile)
        km[split] = _qa_pairs(rows, split)
        icl_rows, splits[f"{split}_icl"] = _load_split(data_dir, f"{split}_icl", profile, False)
        shots[split] = _qa_pairs(icl_rows, f"{split}_icl")[: profile.knowmem_shots]
        splits[f"{split}_icl"]["shots_used"] = len(shots[split])
    pl: dict[str, list[str]] = {}
    for split in ("privleak_forget", "privleak_holdout"):
        rows, splits[split] = _load_split(data_dir, split, profile)
        if not all(isinstance(r, str) for r in rows):
            raise ValueError(f"{MUSE_FILES[split]}: rows must be strings")
        pl[split] = list(rows)
    for r in verb_rows:
        if not (isinstance(r, dict) and isinstance(r.get("prompt"), str)
                and isinstance(r.get("gt"), str)):
            raise ValueError(f"{MUSE_FILES['verbmem_forget']}: rows must have prompt/gt strings")


    profile = dataclasses.replace(
        profile,
        rouge=rouge_settings(profile.rouge_tokenizer),
        data_dir=str(data_dir),
        tokenizer_name=getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__,
        tokenizer_vocab_digest=tokenizer_vocab_digest(tokenizer),
        context_length=ctx,
        splits=splits,
        library_versions=library_versions(),
    )
    bs = profile.generation_batch_size
    metrics: dict[str, MetricValue] = {}
    degenerate: dict[str, dict] = {}
    truncation: dict[str, dict] = {}
    all_gens: list[Generation] = []

    # VerbMem (C1) and exact memorisation on the verbmem prompt/gt pairs
    prompts = [r["prompt"] for r in verb_rows]
    truncation["verbmem_prompts"] = _prompt_truncation(
        tokenizer, prompts, ctx, profile.verbmem_max_new_tokens
    )
    if verb_rows:
        gens = greedy_generate_detailed(
            model, tokenizer, prompts, profile.verbmem_max_new_tokens, batch_size=bs
        )
        refs = [verbmem_reference(tokenizer, r["gt"], profile.verbmem_max_new_tokens)[0]
                for r in verb_rows]
        scores = [rouge_l_f1(g.text, ref, profile.rouge_tokenizer)
                  for g, ref in zip(gens, refs, strict=True)]
        metrics["verbmem_forget"] = _rouge_metric(scores, profile, "verbmem split is empty")
        degenerate["verbmem_forget"] = _degenerate_summary(gens, profile.degenerate_min_tokens)
        all_gens += gens
        n_exact = profile.exact_memorisation_tokens
        if n_exact > profile.verbmem_max_new_tokens:
            metrics["exact_memorisation"] = MetricValue.undefined(
                f"exact_memorisation_tokens {n_exact} > verbmem_max_new_tokens "
                f"{profile.verbmem_max_new_tokens}", n=len(verb_rows))
        else:
            hits, short = [], 0
            for g, r in zip(gens, verb_rows, strict=True):
                prefix, k = first_tokens_text(tokenizer, r["gt"], n_exact)
                short += k < n_exact
                hit = exact_memorised(g.text, prefix)
                if hit is not None:
                    hits.append(float(hit))
            m = bootstrap_mean_ci(hits, n_resamples=profile.bootstrap_resamples,
                                  seed=profile.seed)
            if not hits:
                m = MetricValue.undefined("no verbmem item with a non-empty gt prefix")
            metrics["exact_memorisation"] = dataclasses.replace(
                m, details={**m.details, "tokens": n_exact, "gt_shorter_than_n": int(short),
                            "excluded_empty_gt": len(verb_rows) - len(hits)})
    else:
        metrics["verbmem_forget"] = MetricValue.undefined("verbmem split is empty")
        metrics["exact_memorisation"] = MetricValue.undefined("verbmem split is empty")

    t_verb = time.perf_counter() - t0
    # KnowMem (C2 forget, C4 retain utility), 10-shot
    for split in ("knowmem_forget", "knowmem_retain"):
        prompts = [knowmem_prompt(shots[split], q) for q, _ in km[split]]
        truncation[f"{split}_prompts"] = _prompt_truncation(
            tokenizer, prompts, ctx, profile.knowmem_max_new_tokens
        )
        if not prompts:
            metrics[split] = MetricValue.undefined(f"{split} split is empty")
            continue
        gens = greedy_generate_detailed(
            model, tokenizer, prompts, profile.knowmem_max_new_tokens, batch_size=bs,
            stop_strings=profile.knowmem_stop_strings,
        )
        scores = [rouge_l_f1(g.text.strip(), a, profile.rouge_tokenizer)
                  for g, (_, a) in zip(gens, km[split], strict=True)]
        m = _rouge_metric(scores, profile, f"{split} split is empty")
        metrics[split] = dataclasses.replace(
            m, details={**m.details, "shots": len(shots[split])})
        degenerate[split] = _degenerate_summary(gens, profile.degenerate_min_tokens)
        all_gens += gens
    degenerate["all"] = _degenerate_summary(all_gens, profile.degenerate_min_tokens)
    t_gen = time.perf_counter() - t0

    # PrivLeak (C3) and the other MIA AUCs: forget (members) vs holdout (non-members)
    t1 = time.perf_counter()
    f_texts, h_texts = pl["privleak_forget"], pl["privleak_holdout"]
    lengths = [len(encode(tokenizer, t)) for t in f_texts + h_texts]
    truncation["privleak_texts"] = {
        "n": len(lengths),
        "truncated": 0 if ctx is None else sum(n > ctx for n in lengths),
        "max_tokens": ctx,
    }
    metrics.update(membership_metrics(model, tokenizer, f_texts, h_texts, profile,
                                      forget_keys={normalise_text(t) for t in f_texts},
                                      holdout_keys={normalise_text(t) for t in h_texts}))
    pl_metric, pl_block = privleak_metric(
        metrics["mink_auc"], reference_auc, reference_type, band=profile.privleak_band
    )
    metrics["privleak"] = pl_metric
    t_score = time.perf_counter() - t1

    return {
        "profile": profile.to_dict(),
        "metrics": {k_: v.to_dict() for k_, v in metrics.items()},
        "privleak": pl_block,
        "degenerate": degenerate,
        "truncation": truncation,
        "timing": {
            "generation_seconds": round(t_gen, 3),
            "verbmem_seconds": round(t_verb, 3),
            "knowmem_seconds": round(t_gen - t_verb, 3),
            "scoring_seconds": round(t_score, 3),
            "total_seconds": round(time.perf_counter() - t0, 3),
        },
    }
