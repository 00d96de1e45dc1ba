"""TOFU metric formulas on per-question quantities (no model, no data files).

Source: Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", arXiv 2401.06121,
§2.2.1 (probability, ROUGE, truth ratio, Model Utility) and §2.2.2 (Forget Quality), and the
benchmark's code (``locuslab/tofu``: ``evaluate_util.py``, ``aggregate_eval_stat.py``), whose
numbers the published results quote. :func:`aggregate_tofu` turns per-question scores
(:class:`TofuQuestion`) into the report's metrics; :func:`evaluation.profiles.tofu.evaluate_tofu`
computes those scores with a model, ``bench/tofu_published_logs.py`` reads them from the
benchmark's per-row logs.

Formulas, with p̄(x|q) = P(x|q)^{1/|x|} = exp(mean log-prob of x's tokens):

- **Probability**: forget / retain: mean of p̄(a|q). Real authors / world facts: mean of
  p(a|q) / (p(a|q) + Σ_j p(â_j|q)) over the answer and its perturbed answers, with p = p̄
  (``choice_probability="normalised"``: the benchmark's code, ``aggregate_eval_stat.py``) or
  p = P (``"unnormalised"``: the paper's text, §2.2.1; the benchmark repository's issue 26).
- **Truth ratio** of one question: R = M_j p̄(â_j|q) / p̄(ã|q), ã = the paraphrased answer
  (forget, retain) or the answer (real authors, world facts), M = the geometric mean
  exp(mean_j log p̄(â_j)) (``truth_ratio_mean="geometric"``, the code) or the arithmetic
  mean (``"arithmetic"``, the paper's formula). Forget split: headline = mean of
  min(R, 1/R) (the code's statistic; 1 = the model cannot tell paraphrased from perturbed
  answers), mean R in ``details``; the per-question R feed Forget Quality. Other splits:
  mean of max(0, 1 − R).
- **Model Utility**: harmonic mean of the nine split means (probability, ROUGE-L recall,
  truth ratio) × (retain, real authors, world facts) (:func:`model_utility`).
- **Forget Quality**: p-value of ``scipy.stats.ks_2samp`` between the unlearned and the
  retrained model's per-question R on the forget split (:func:`forget_quality`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..stats import MetricValue, bootstrap_mean_ci

__all__ = [
    "TOFU_UTILITY_SPLITS",
    "TOFU_SPLITS",
    "AnswerScore",
    "TofuQuestion",
    "truth_ratio",
    "choice_probability",
    "harmonic_mean",
    "model_utility",
    "forget_quality",
    "aggregate_tofu",
]

#: Splits of Model Utility, in order (TOFU §2.2.1).
TOFU_UTILITY_SPLITS: tuple[str, ...] = ("retain", "real_authors", "world_facts")
TOFU_SPLITS: tuple[str, ...] = ("forget",) + TOFU_UTILITY_SPLITS
_UTILITY_PARTS: tuple[str, ...] = ("probability", "rouge_recall", "truth_ratio")
_CHOICE_SPLITS = ("real_authors", "world_facts")


@dataclass(frozen=True)
class AnswerScore:
    """log P(answer | prompt) of one pair.

    Attributes:
        logprob: sum of the answer tokens' log-probabilities (nats).
        n_tokens: |a|, the number of answer tokens scored (with the EOS token when the
            profile scores it).
        truncated: the pair exceeded the context and was cut (prompt from the left first).
    """

    logprob: float
    n_tokens: int
    truncated: bool = False

    @property
    def mean_logprob(self) -> float:
        """log p̄ = log P(a|q) / |a| (NaN when no token was scored)."""
        return self.logprob / self.n_tokens if self.n_tokens else math.nan


@dataclass(frozen=True)
class TofuQuestion:
    """Per-question quantities of one TOFU split.

    Attributes:
        answer: score of the true answer a (probability).
        base: score of ã (paraphrased answer on forget / retain, the answer elsewhere).
        perturbed: scores of the perturbed answers â_j (≥ 1).
        rouge_recall: ROUGE-L recall of the greedy answer, in [0, 1] (utility splits).
    """

    answer: AnswerScore
    base: AnswerScore
    perturbed: tuple[AnswerScore, ...]
    rouge_recall: float | None = None


def truth_ratio(
    base: AnswerScore, perturbed: Sequence[AnswerScore], mean: str = "arithmetic"
) -> float:
    """R = M_j p̄(â_j|q) / p̄(ã|q) with p̄(x|q) = P(x|q)^{1/|x|} (TOFU §2.2.1).

    ``mean="arithmetic"`` (paper): (1/m) Σ_j p̄(â_j). ``"geometric"`` (TOFU code):
    exp((1/m) Σ_j log p̄(â_j)). Computed in log space. Raises ``ValueError`` for no
    perturbed answers, an answer without tokens, or an unknown ``mean``.
    """
    if not perturbed:
        raise ValueError("truth ratio needs at least one perturbed answer")
    lps = np.array([s.mean_logprob for s in perturbed], dtype=np.float64)
    base_lp = base.mean_logprob
    if not (np.all(np.isfinite(lps)) and math.isfinite(base_lp)):
        raise ValueError("an answer has no scored token")
    if mean == "arithmetic":
        m = float(np.logaddexp.reduce(lps) - math.log(lps.size))
    elif mean == "geometric":
        m = float(lps.mean())
    else:
        raise ValueError(f"mean must be 'arithmetic' or 'geometric', got {mean!r}")
    return math.exp(m - base_lp)


def choice_probability(
    answer: AnswerScore, perturbed: Sequence[AnswerScore], form: str = "normalised"
) -> float:
    """p(a) / (p(a) + Σ_j p(â_j)), in (0, 1], computed in log space (TOFU §2.2.1).

    ``form="normalised"``: p = p̄ = P^{1/|x|} (TOFU code); ``"unnormalised"``: p = P (the
    paper's text). Example: p̄(a) = 0.5, p̄(â) = 0.25, 0.25 → 0.5. Raises ``ValueError`` for
    an unknown ``form`` or an answer without tokens."""
    if form not in ("normalised", "unnormalised"):
        raise ValueError(f"form must be 'normalised' or 'unnormalised', got {form!r}")
    scores = [answer, *perturbed]
    if any(s.n_tokens <= 0 for s in scores):
        raise ValueError("an answer has no scored token")
    lps = np.array([s.mean_logprob if form == "normalised" else s.logprob for s in scores])
    return float(math.exp(lps[0] - np.logaddexp.reduce(lps)))


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean H = n / Σ 1/x_i of non-negative numbers; 0.0 if any x_i = 0 (the
    limit, as ``scipy.stats.hmean``). Used for TOFU Model Utility (§2.2.1).
    Example: (0.5, 0.25, 1.0) → 3 / (2 + 4 + 1) = 0.428571…
    Raises ``ValueError`` for an empty input or a negative / non-finite value."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("harmonic mean of no values")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("harmonic mean needs finite non-negative values")
    if np.any(v == 0):
        return 0.0
    return float(v.size / np.sum(1.0 / v))


def model_utility(
    components: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> MetricValue:
    """TOFU Model Utility (§2.2.1): harmonic mean of the 9 split means
    (probability, ROUGE-L recall, truth ratio) × (retain, real_authors, world_facts).

    Args:
        components: ``{split: {"probability"|"rouge_recall"|"truth_ratio": per-question
            values}}`` for each split of :data:`TOFU_UTILITY_SPLITS`; within a split the
            three lists are over the same questions.
    CI: percentile bootstrap resampling the questions of each split independently (the
    three values of a question stay together). Returns ``undefined`` with the reason when a
    split or part is missing, empty or non-finite.
    """
    means, arrays, n = [], {}, {}
    for split in TOFU_UTILITY_SPLITS:
        parts = components.get(split) or {}
        for part in _UTILITY_PARTS:
            a = np.asarray(list(parts.get(part) or []), dtype=np.float64)
            if a.size == 0:
                return MetricValue.undefined(f"{split} {part}: no values", n=n)
            if not np.all(np.isfinite(a)):
                return MetricValue.undefined(f"{split} {part}: non-finite values", n=n)
            arrays[(split, part)] = a
            means.append(float(a.mean()))
        sizes = {arrays[(split, p)].size for p in _UTILITY_PARTS}
        if len(sizes) != 1:
            return MetricValue.undefined(f"{split}: parts have different sizes {sorted(sizes)}")
        n[split] = sizes.pop()
    value = harmonic_mean(means)
    ci = None
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        boot = np.empty((n_bootstrap, len(means)))
        col = 0
        for split in TOFU_UTILITY_SPLITS:
            idx = rng.integers(0, n[split], size=(n_bootstrap, n[split]))
            for part in _UTILITY_PARTS:
                boot[:, col] = arrays[(split, part)][idx].mean(axis=1)
                col += 1
        hm = np.where(np.any(boot == 0, axis=1), 0.0,
                      boot.shape[1] / np.sum(1.0 / np.where(boot == 0, 1.0, boot), axis=1))
        lo, hi = np.percentile(hm, [2.5, 97.5])
        ci = (float(lo), float(hi))
    parts = {f"{s}_{p}": m for (s, p), m in zip(
        [(s, p) for s in TOFU_UTILITY_SPLITS for p in _UTILITY_PARTS], means, strict=True)}
    return MetricValue(value=value, ci95=ci, n=n, details={"components": parts,
                                                          "formula": "harmonic mean of 9"})


def forget_quality(
    unlearned: Sequence[float],
    retrained: Sequence[float],
    *,
    min_size: int = 5,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> MetricValue:
    """TOFU Forget Quality (§2.2.2): p-value of ``scipy.stats.ks_2samp(unlearned,
    retrained)`` (two-sided, ``method="auto"``: exact for small samples) on the per-question
    truth ratios R of the forget set. High (→ 1) = indistinguishable from the retrained
    model. The KS test depends only on the ordering of the pooled values, so using R or 1/R
    (the TOFU code's orientation) gives the same p-value.

    CI: percentile bootstrap resampling both samples independently. Returns ``undefined``
    with the reason if a sample is below ``min_size`` or not finite.
    Example: identical samples → 1.0; two completely separated samples of 5 → 2/C(10,5).
    """
    from scipy.stats import ks_2samp

    u = np.asarray(list(unlearned), dtype=np.float64).ravel()
    r = np.asarray(list(retrained), dtype=np.float64).ravel()
    n = {"unlearned": int(u.size), "retrained": int(r.size)}
    if u.size < min_size or r.size < min_size:
        return MetricValue.undefined(
            f"truth-ratio samples below the minimum size {min_size} "
            f"(unlearned={u.size}, retrained={r.size})", n=n)
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(r))):
        return MetricValue.undefined("non-finite truth ratio", n=n)
    with warnings.catch_warnings(record=True) as caught:  # exact p-value impossible → "asymp" (recorded)
        warnings.simplefilter("always", RuntimeWarning)
        res = ks_2samp(u, r)
    method = "asymp (exact calculation unsuccessful)" if any(
        "Exact calculation unsuccessful" in str(w.message) for w in caught) else "auto"
    ci = None
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        with warnings.catch_warnings():  # resamples with ties may fall back to "asymp"
            warnings.simplefilter("ignore", RuntimeWarning)
            ps = [ks_2samp(u[rng.integers(0, u.size, u.size)],
                           r[rng.integers(0, r.size, r.size)]).pvalue
                  for _ in range(n_bootstrap)]
        lo, hi = np.percentile(ps, [2.5, 97.5])
        ci = (float(lo), float(hi))
    pvalue = float(res.pvalue)
    details = {"ks_statistic": float(res.statistic), "test": "ks_2samp", "method": method}
    if pvalue > 0:
        details["log10_pvalue"] = math.log10(pvalue)
    return MetricValue(value=pvalue, ci95=ci, n=n, details=details)


def _split_values(questions: Sequence[TofuQuestion], split: str, tr_mean: str,
                  choice_form: str) -> tuple[dict[str, list[float]], int]:
    """Per-question probability, R and ROUGE of one split; ``(values, n_excluded)``: a
    question with an answer that has no scored token is excluded."""
    vals: dict[str, list[float]] = {"probability": [], "truth_ratio": [], "rouge_recall": []}
    bad = 0
    for q in questions:
        try:
            r = truth_ratio(q.base, q.perturbed, tr_mean)
            if split in _CHOICE_SPLITS:
                prob = choice_probability(q.answer, q.perturbed, choice_form)
            else:
                a_lp = q.answer.mean_logprob
                if not math.isfinite(a_lp):
                    raise ValueError("answer has no token")
                prob = math.exp(a_lp)
        except ValueError:
            bad += 1
            continue
        vals["probability"].append(prob)
        vals["truth_ratio"].append(r)
        if q.rouge_recall is not None:
            vals["rouge_recall"].append(float(q.rouge_recall))
    return vals, bad


def _forget_truth_ratio(trs: list[float], boot: dict) -> MetricValue:
    if not trs:
        return MetricValue.undefined("forget split has no scorable question")
    stat = [min(r, 1.0 / r) for r in trs]
    head = bootstrap_mean_ci(stat, **boot)
    mean_r = bootstrap_mean_ci(trs, **boot)
    return dataclasses.replace(head, details={
        "statistic": "mean min(R, 1/R) (TOFU code); per-question R feed Forget Quality",
        "mean_r": mean_r.value,
        "mean_r_ci95": None if mean_r.ci95 is None else list(mean_r.ci95),
    })


def aggregate_tofu(
    splits: Mapping[str, Sequence[TofuQuestion]],
    *,
    truth_ratio_mean: str = "geometric",
    choice_probability_form: str = "normalised",
    retrained_truth_ratios: Sequence[float] | None = None,
    forget_quality_min_size: int = 5,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """The TOFU metrics of one model from per-question quantities (formulas: module
    docstring).

    Args:
        splits: ``{"forget"|"retain"|"real_authors"|"world_facts": [TofuQuestion]}``; the
            utility splits need ``rouge_recall`` on every question (else their ROUGE and
            Model Utility are ``undefined``).
        truth_ratio_mean / choice_probability_form: see :func:`truth_ratio`,
            :func:`choice_probability`.
        retrained_truth_ratios: the retrained model's forget-split R values (the
            ``forget_truth_ratios`` of its result); ``None`` → Forget Quality ``undefined``.

    Returns ``{"metrics": {name: MetricValue}, "forget_truth_ratios": [R], "excluded":
    {split: n}, "components": {split: {part: [values]}}}`` with the metrics
    ``probability_<split>``, ``truth_ratio_<split>``, ``rouge_recall_<utility split>``,
    ``model_utility`` and ``forget_quality``. A missing or empty split gives ``undefined``
    metrics with the reason, never an exception.
    """
    boot = {"n_resamples": n_bootstrap, "seed": seed}
    metrics: dict[str, MetricValue] = {}
    excluded: dict[str, int] = {}
    components: dict[str, dict[str, list[float]]] = {}
    forget_tr: list[float] = []
    for split in TOFU_SPLITS:
        vals, excluded[split] = _split_values(splits.get(split) or [], split, truth_ratio_mean,
                                              choice_probability_form)
        empty = f"{split} split has no scorable question"
        probs, trs = vals["probability"], vals["truth_ratio"]
        metrics[f"probability_{split}"] = (bootstrap_mean_ci(probs, **boot) if probs
                                           else MetricValue.undefined(empty))
        if split == "forget":
            forget_tr = trs
            metrics["truth_ratio_forget"] = _forget_truth_ratio(trs, boot)
            continue
        stat = [max(0.0, 1.0 - r) for r in trs]
        m = bootstrap_mean_ci(stat, **boot) if stat else MetricValue.undefined(empty)
        metrics[f"truth_ratio_{split}"] = dataclasses.replace(
            m, details={**m.details, "statistic": "mean max(0, 1 - R)"})
        rec = vals["rouge_recall"]
        if rec and len(rec) == len(probs):
            metrics[f"rouge_recall_{split}"] = bootstrap_mean_ci(rec, **boot)
        else:
            metrics[f"rouge_recall_{split}"] = MetricValue.undefined(
                empty if not probs else f"{split}: ROUGE-L recall missing on some questions")
        components[split] = {"probability": probs, "truth_ratio": stat, "rouge_recall": rec}
    metrics["model_utility"] = model_utility(components, n_bootstrap=n_bootstrap, seed=seed)
    if retrained_truth_ratios is None:
        metrics["forget_quality"] = MetricValue.undefined(
            "needs the retrained model's forget-set truth ratios (--retrained)",
            n={"unlearned": len(forget_tr), "retrained": 0})
    else:
        metrics["forget_quality"] = forget_quality(
            forget_tr, retrained_truth_ratios, min_size=forget_quality_min_size,
            n_bootstrap=n_bootstrap, seed=seed)
    return {"metrics": metrics, "forget_truth_ratios": forget_tr, "excluded": excluded,
            "components": components}
