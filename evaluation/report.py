"""Evaluation report of one model on QA corpora (DESIGN §7, "QA corpora (TOFU)").

Metrics (MUSE arXiv 2407.06460 §3, adapted to TOFU arXiv 2401.06121 QA data):

- ``verbmem_forget``: prompt = ``format_prompt(ex)`` (``"Question: {q}\\nAnswer: "``) + the
  first ⌊n/2⌋ of the answer's n tokens; reference = the rest of the answer; greedy decoding
  (``verbmem_max_new_tokens``, default 128), cut at the profile's stop strings; mean ROUGE-L
  F1 × 100. **Deviation** from MUSE (plain-text VerbMem): QA records, and the continuation
  is cut at the QA stop strings because the reference ends with the answer.
- ``knowmem_forget`` / ``knowmem_retain``: prompt = ``format_prompt(ex)`` alone (zero-shot,
  the training template; **Deviation** from MUSE's 10-shot prompt), reference = the answer,
  greedy 32 new tokens, cut at ``\\n\\n``, ``\\nQuestion``, ``Question:``; mean ROUGE-L F1
  × 100. ``knowmem_retain`` is the utility metric (on at most ``max_retain_examples``
  retain records, a seeded sample).
- ``mink_auc``: Min-K% (k = 0.4) membership AUC of forget vs holdout on
  ``format_example(ex)`` texts, MUSE orientation (memorised ≈ 0, ideal ≈ 0.5).
  Also ``loss_auc``, ``zlib_auc``, ``ppl_lower_auc`` (MUSE's ``PPL/lower``) and
  ``minkpp_auc`` (Min-K%++, arXiv 2404.02936), same orientation.

Every metric carries its sample size and a seeded 95% percentile bootstrap CI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from unlearning_engine.data import (
    QA_TEMPLATE,
    Example,
    format_example,
    format_prompt,
    split_overlaps,
    text_digest,
)

from .generation import KNOWMEM_STOP_STRINGS, Generation, greedy_generate_detailed
from .mia import mia_auc
from .rouge import UNICODE_ROUGE_TOKENIZER, rouge_l_f1, rouge_settings
from .scoring import (
    loss_score,
    lowercase_score,
    min_k_plus_plus_score,
    min_k_score,
    token_statistics,
    zlib_score,
)
from .stats import MetricValue, bootstrap_mean_ci

__all__ = [
    "MetricValue",
    "EvaluationProfile",
    "evaluate_qa_model",
    "verbmem_pair",
    "is_degenerate",
    "tokenizer_vocab_digest",
    "examples_digest",
]


@dataclass(frozen=True)
class EvaluationProfile:
    """Pinned evaluation settings, written into every report and certificate (DESIGN §7).

    ``tokenizer_name``, ``tokenizer_vocab_digest`` and ``data_digests`` are filled in by
    :func:`evaluate_qa_model`; the rest are inputs. ``to_dict()`` gives the JSON form.
    """

    name: str = "tofu-qa-v1"
    tokenizer_name: str | None = None
    tokenizer_vocab_digest: str | None = None
    dtype: str = "fp32"
    #: ROUGE tokenizer option (:data:`evaluation.rouge.ROUGE_TOKENIZERS`); the project's corpora
    #: may be non-Latin, so the Unicode-aware one is this profile's default. ``rouge`` is derived.
    rouge_tokenizer: str = UNICODE_ROUGE_TOKENIZER
    rouge: dict = field(default_factory=rouge_settings)
    qa_template: str = QA_TEMPLATE
    decoding: str = "greedy"
    verbmem_max_new_tokens: int = 128
    verbmem_prompt: str = "format_prompt(question) + first floor(n/2) of the answer's n tokens"
    verbmem_stop_strings: tuple[str, ...] = KNOWMEM_STOP_STRINGS
    knowmem_max_new_tokens: int = 32
    knowmem_shots: int = 0
    knowmem_stop_strings: tuple[str, ...] = KNOWMEM_STOP_STRINGS
    max_retain_examples: int | None = 200
    generation_batch_size: int = 16
    scoring_batch_size: int = 16
    mink_k: float = 0.4
    mia_min_size: int = 5
    seed: int = 0
    bootstrap_resamples: int = 1000
    ci_level: float = 0.95
    ci_method: str = "percentile bootstrap"
    degenerate_min_tokens: int = 4
    data_digests: dict = field(default_factory=dict)
    library_versions: dict = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        *,
        max_new_tokens_verbmem: int | None = None,
        max_new_tokens_knowmem: int | None = None,
        **fields: Any,
    ) -> EvaluationProfile:
        """Profile with deployment overrides (e.g. Django settings).

        ``max_new_tokens_verbmem``/``max_new_tokens_knowmem`` map to
        ``verbmem_max_new_tokens``/``knowmem_max_new_tokens`` (``None`` keeps the default);
        other keyword arguments must be field names and are used as given.
        Raises ``TypeError`` for an unknown field.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise TypeError(f"unknown EvaluationProfile field(s): {', '.join(unknown)}")
        kw = dict(fields)
        if max_new_tokens_verbmem is not None:
            kw["verbmem_max_new_tokens"] = int(max_new_tokens_verbmem)
        if max_new_tokens_knowmem is not None:
            kw["knowmem_max_new_tokens"] = int(max_new_tokens_knowmem)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists)."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def library_versions() -> dict:
    """Versions of the numeric libraries, pinned into every evaluation profile."""
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__}


def tokenizer_vocab_digest(tokenizer) -> str:
    """sha256 (hex) of the tokenizer's vocabulary and special tokens as canonical JSON."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    special = {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())}
    blob = json.dumps(
        {"vocab": vocab, "special": special},
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )
    return _sha256(blob.encode("utf-8"))


def examples_digest(examples: Sequence[Example]) -> dict:
    """``{"n", "sha256"}``: sha256 of the newline-joined sha256 hex digests of each
    record's ``format_example`` text (the record texts themselves are not kept)."""
    digests = [_sha256(format_example(ex).encode("utf-8")) for ex in examples]
    return {"n": len(digests), "sha256": _sha256("\n".join(digests).encode("ascii"))}


def verbmem_pair(tokenizer, ex: Example) -> tuple[str, str]:
    """``(prompt, reference)`` for QA VerbMem (DESIGN §7).

    The answer is tokenized alone (no special tokens) into n tokens; the split point is
    the start character of token ⌊n/2⌋ (offset mapping), so prompt = ``format_prompt(ex)``
    + ``answer[:c]`` and reference = ``answer[c:]`` are exact substrings of the record.
    Tokenizers without offsets fall back to decoding the two halves.
    Raises ``ValueError`` for a non-QA example.
    """
    if not ex.is_qa:
        raise ValueError("verbmem_pair needs a QA example")
    answer = ex.answer or ""
    try:
        enc = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        n = len(offsets)
        c = offsets[n // 2][0] if n >= 2 else 0
        return format_prompt(ex) + answer[:c], answer[c:]
    except (NotImplementedError, KeyError, TypeError):
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        h = len(ids) // 2
        head = tokenizer.decode(ids[:h]) if h else ""
        return format_prompt(ex) + head, tokenizer.decode(ids[h:])


def is_degenerate(gen: Generation, min_tokens: int = 4) -> str | None:
    """Why a generation is degenerate, or ``None``.

    ``"empty"``: no non-whitespace text. ``"repeated"``: at least ``min_tokens`` generated
    tokens (or whitespace-separated words) that are all one repeated token (word), e.g.
    ``"the the the the"``. These are collapse symptoms (DESIGN §5, §7).
    """
    if not gen.text.strip():
        return "empty"
    words = gen.text.split()
    if len(words) >= min_tokens and len(set(words)) == 1:
        return "repeated"
    toks = gen.token_ids
    if len(toks) >= min_tokens and len(set(toks)) == 1:
        return "repeated"
    return None


def _degenerate_summary(gens: Sequence[Generation], min_tokens: int) -> dict:
    reasons = [is_degenerate(g, min_tokens) for g in gens]
    empty = sum(r == "empty" for r in reasons)
    repeated = sum(r == "repeated" for r in reasons)
    n = len(gens)
    return {
        "n": n,
        "empty": empty,
        "repeated": repeated,
        "fraction": (empty + repeated) / n if n else 0.0,
    }


def _rouge_metric(
    preds: Sequence[str], refs: Sequence[str], profile: EvaluationProfile
) -> MetricValue:
    scores = [rouge_l_f1(p, r, profile.rouge_tokenizer) for p, r in zip(preds, refs, strict=True)]
    return bootstrap_mean_ci(
        scores, n_resamples=profile.bootstrap_resamples, seed=profile.seed, scale=100.0
    )


def _check_qa(name: str, examples: Sequence[Example]) -> None:
    for ex in examples:
        if not isinstance(ex, Example) or not ex.is_qa:
            raise ValueError(f"{name}: evaluate_qa_model needs QA Examples (question/answer)")


def split_overlap(a: Sequence[Example], b: Sequence[Example]) -> int:
    """How many items of ``b`` are also in ``a``, by ``record_id`` or by identical normalised text
    (:func:`unlearning_engine.data.split_overlaps`, the project's one overlap rule)."""
    return len(split_overlaps(a, b))


def membership_metrics(model, tokenizer, forget_texts: Sequence[str], holdout_texts: Sequence[str],
                       profile, *, forget_keys, holdout_keys) -> dict[str, MetricValue]:
    """Min-K% (k = ``profile.mink_k``), loss, zlib, lower-case (``ppl_lower_auc``, MUSE's
    ``PPL/lower``: :func:`~evaluation.scoring.lowercase_score`, one more forward pass per
    lower-cased text) and Min-K%++ membership AUCs of forget (members) vs holdout
    (non-members), MUSE orientation (arXiv 2407.06460 §3 C3; Min-K% arXiv 2310.16789; Min-K%++
    arXiv 2404.02936). Texts the tokenizer turns into no scorable token (or whose lower-cased
    copy has none) are left out and counted in ``details``. The Min-K% metric also carries the per-text
    scores (numbers only, never text) for the paired PrivLeak CI of the verdict.
    """
    stats = token_statistics(model, tokenizer, list(forget_texts) + list(holdout_texts),
                             batch_size=profile.scoring_batch_size)
    lower = token_statistics(model, tokenizer, [t.lower() for t in forget_texts]
                             + [t.lower() for t in holdout_texts],
                             batch_size=profile.scoring_batch_size, moments=False)
    nf = len(forget_texts)
    f_stats, h_stats = stats[:nf], stats[nf:]
    f_low, h_low = lower[:nf], lower[nf:]

    def scorable(st, lo):
        return st.logprobs.size > 0 and lo.logprobs.size > 0 and lo.logprobs.sum() != 0.0

    f_ok = [i for i, st in enumerate(f_stats) if scorable(st, f_low[i])]
    h_ok = [i for i, st in enumerate(h_stats) if scorable(st, h_low[i])]
    excluded = {"forget_unscorable": len(forget_texts) - len(f_ok),
                "holdout_unscorable": len(holdout_texts) - len(h_ok)}
    k = profile.mink_k
    scorers = {
        "mink_auc": lambda st, t, lo: min_k_score(st.logprobs, k),
        "loss_auc": lambda st, t, lo: loss_score(st.logprobs),
        "zlib_auc": lambda st, t, lo: zlib_score(st.logprobs, t),
        "ppl_lower_auc": lambda st, t, lo: lowercase_score(st.logprobs, lo.logprobs),
        "minkpp_auc": lambda st, t, lo: min_k_plus_plus_score(st, k),
    }
    out: dict[str, MetricValue] = {}
    for name, fn in scorers.items():
        fs = [fn(f_stats[i], forget_texts[i], f_low[i]) for i in f_ok]
        hs = [fn(h_stats[i], holdout_texts[i], h_low[i]) for i in h_ok]
        m = mia_auc(fs, hs, min_size=profile.mia_min_size, forget_keys=forget_keys,
                    holdout_keys=holdout_keys, n_bootstrap=profile.bootstrap_resamples, seed=profile.seed)
        details = {**m.details, **excluded}
        if name == "mink_auc" and m.status == "ok":
            details["scores"] = {"forget": [round(float(x), 6) for x in fs],
                                 "holdout": [round(float(x), 6) for x in hs]}
        out[name] = dataclasses.replace(m, details=details)
    return out


def evaluate_qa_model(
    model,
    tokenizer,
    *,
    forget: list[Example],
    retain: list[Example],
    holdout: list[Example],
    profile: EvaluationProfile | None = None,
    manifest=None,
) -> dict:
    """Evaluate one model on QA forget / retain / holdout sets (DESIGN §7).

    Args:
        model: a ``transformers`` causal LM. It is switched to ``eval()`` and, if not
            float32, cast to float32 **in place** (the profile pins fp32).
        tokenizer: its tokenizer.
        forget: QA records to be forgotten (VerbMem, KnowMem_f, MIA members).
        retain: QA records kept (KnowMem_r = utility; seeded sample of at most
            ``profile.max_retain_examples``).
        holdout: QA records never trained on (MIA non-members); must be disjoint from forget.
        profile: settings; defaults to :class:`EvaluationProfile()`.
        manifest: optional :class:`evaluation.manifest.EvaluationManifest` the splits come from;
            each split's normalised-text digests must be the manifest's, and the report then
            carries ``manifest_sha256``.

    Returns a JSON-ready dict::

        {"profile": EvaluationProfile.to_dict(), ["manifest_sha256": str,]
         "metrics": {"verbmem_forget", "knowmem_forget", "knowmem_retain",
                     "mink_auc", "loss_auc", "zlib_auc", "ppl_lower_auc", "minkpp_auc":
                     MetricValue.to_dict()},
         "degenerate": {"verbmem_forget"|"knowmem_forget"|"knowmem_retain"|"all":
                        {"n", "empty", "repeated", "fraction"}},
         "timing": {"generation_seconds", "scoring_seconds", "total_seconds"}}

    VerbMem/KnowMem values are ROUGE-L F1 × 100 (0..100), AUCs in [0, 1]. Empty splits give
    ``undefined`` metrics with a reason, never an exception. Raises ``ValueError`` if a
    record is not a QA :class:`Example`, or if a split is not the manifest's.
    """
    t0 = time.perf_counter()
    profile = profile or EvaluationProfile()
    _check_qa("forget", forget)
    _check_qa("retain", retain)
    _check_qa("holdout", holdout)
    if manifest is not None:
        for name, exs in (("forget", forget), ("retain", retain), ("holdout", holdout)):
            if sorted(text_digest(ex) for ex in exs) != manifest.text_digests(name):
                raise ValueError(f"the {name} split is not the evaluation manifest's {name} split")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        model.float()
    model.eval()

    retain_eval = list(retain)
    if profile.max_retain_examples is not None and len(retain_eval) > profile.max_retain_examples:
        picked = sorted(
            random.Random(profile.seed).sample(range(len(retain_eval)), profile.max_retain_examples)
        )
        retain_eval = [retain_eval[i] for i in picked]


    profile = dataclasses.replace(
        profile,
        rouge=rouge_settings(profile.rouge_tokenizer),
        tokenizer_name=getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__,
        tokenizer_vocab_digest=tokenizer_vocab_digest(tokenizer),
        data_digests={
            "forget": examples_digest(forget),
            "retain": examples_digest(retain),
            "retain_evaluated": examples_digest(retain_eval),
            "holdout": examples_digest(holdout),
        },
        library_versions=library_versions(),
    )
    bs = profile.generation_batch_size
    metrics: dict[str, MetricValue] = {}
    degenerate: dict[str, dict] = {}
    all_gens: list[Generation] = []

    # VerbMem on forget
    if forget:
        pairs = [verbmem_pair(tokenizer, ex) for ex in forget]
        gens = greedy_generate_detailed(
            model,
            tokenizer,
            [p for p, _ in pairs],
            profile.verbmem_max_new_tokens,
            batch_size=bs,
            stop_strings=profile.verbmem_stop_strings,
        )
        metrics["verbmem_forget"] = _rouge_metric(
            [g.text.strip() for g in gens], [r for _, r in pairs], profile
        )
        degenerate["verbmem_forget"] = _degenerate_summary(gens, profile.degenerate_min_tokens)
        all_gens += gens
    else:
        metrics["verbmem_forget"] = MetricValue.undefined("forget set is empty")

    # KnowMem on forget and retain (zero-shot, training template)
    shared = split_overlap(forget, retain)
    for split, exs in (("knowmem_forget", forget), ("knowmem_retain", retain_eval)):
        if not exs:
            metrics[split] = MetricValue.undefined(f"{split.split('_')[1]} set is empty")
            continue
        if split == "knowmem_retain" and shared:
            # utility on records that are also being forgotten measures nothing (as forget vs holdout
            # makes the membership AUC undefined, evaluation/mia.py)
            metrics[split] = MetricValue.undefined(
                f"forget and retain sets overlap ({shared} shared items); they must be disjoint",
                n={"retain": len(retain_eval)},
            )
            continue
        gens = greedy_generate_detailed(
            model,
            tokenizer,
            [format_prompt(ex) for ex in exs],
            profile.knowmem_max_new_tokens,
            batch_size=bs,
            stop_strings=profile.knowmem_stop_strings,
        )
        m = _rouge_metric([g.text.strip() for g in gens], [ex.answer for ex in exs], profile)
        if split == "knowmem_retain" and len(retain_eval) < len(retain):
            m = dataclasses.replace(
                m, details={**m.details, "population": len(retain), "sampled": True}
            )
        metrics[split] = m
        degenerate[split] = _degenerate_summary(gens, profile.degenerate_min_tokens)
        all_gens += gens
    degenerate["all"] = _degenerate_summary(all_gens, profile.degenerate_min_tokens)
    t_gen = time.perf_counter() - t0

    # Membership inference: forget (members) vs holdout (non-members)
    t1 = time.perf_counter()
    f_texts = [format_example(ex) for ex in forget]
    h_texts = [format_example(ex) for ex in holdout]
    f_keys = {text_digest(ex) for ex in forget} | {("record_id", ex.record_id) for ex in forget if ex.record_id}
    h_keys = {text_digest(ex) for ex in holdout} | {("record_id", ex.record_id) for ex in holdout if ex.record_id}
    metrics.update(membership_metrics(model, tokenizer, f_texts, h_texts, profile,
                                      forget_keys=f_keys, holdout_keys=h_keys))
    t_score = time.perf_counter() - t1

    out = {
        "profile": profile.to_dict(),
        "metrics": {k_: v.to_dict() for k_, v in metrics.items()},
        "degenerate": degenerate,
        "timing": {
            "generation_seconds": round(t_gen, 3),
            "scoring_seconds": round(t_score, 3),
            "total_seconds": round(time.perf_counter() - t0, 3),
        },
    }
    if manifest is not None:
        out["manifest_sha256"] = manifest.sha256
    return out
