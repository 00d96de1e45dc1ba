"""RESTOR metrics on per-fact judgements (Rezaei et al., "RESTOR: Knowledge Recovery through
Machine Unlearning", arXiv 2411.00204, §3).

RESTOR's question: a clean model knows a set F of entity facts; fine-tuning it on documents that
state wrong values for them (plus unrelated filler) gives the *corrupted* model; does unlearning
the corrupting documents give back what the clean model knew? Per model we judge every fact
f ∈ F (:func:`evaluation.profiles.restor.judge_answer`): ``correct`` (the answer carries the
true value and not the corrupted one), ``corrupted`` (the corrupted value and not the true one),
``both`` or ``neither``. From the judgements:

- accuracy(M) = |{f : judge_M(f) = correct}| / |F|                         (§3, "accuracy")
- lost set L = {f : judge_clean(f) = correct and judge_corrupted(f) ≠ correct}
- recovery(M) = |{f ∈ L : judge_M(f) = correct}| / |L|                     (§3, "recovery")
- corrupted-value share(M) = |{f : judge_M(f) ∈ {corrupted, both}}| / |F|
  (answers still carrying the corrupted value; also reported on L)
- collateral(M) = |{f : judge_corrupted(f) = correct, judge_M(f) ≠ correct}| / |{f :
  judge_corrupted(f) = correct}|: facts the corruption left intact that unlearning broke.

All are binomial proportions k/n reported in percent (0..100) with the exact (Clopper–Pearson)
95% interval (Clopper & Pearson, Biometrika 1934): [B(α/2; k, n−k+1), B(1−α/2; k+1, n−k)] with
B the Beta quantile (lower bound 0 when k = 0, upper 100 when k = n). n = 0 gives an
``undefined`` :class:`~evaluation.stats.MetricValue` with the reason, never an exception.
No Django; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..stats import MetricValue

__all__ = ["JUDGEMENTS", "clopper_pearson", "proportion_metric", "lost_facts", "restor_metrics"]

#: Possible per-fact judgements (see the module docstring).
JUDGEMENTS = ("correct", "corrupted", "both", "neither")
_CARRIES_WRONG = ("corrupted", "both")


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes out of n (fractions in [0, 1]).

    Raises:
        ValueError: n < 1 or k outside [0, n].
    """
    from scipy.stats import beta

    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1 (k={k}, n={n})")
    a = (1.0 - level) / 2.0
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return lo, hi


def proportion_metric(k: int, n: int, empty_reason: str, details: dict | None = None) -> MetricValue:
    """``k / n × 100`` with its Clopper–Pearson 95% CI (percent) and ``n``; ``undefined`` with
    ``empty_reason`` when n = 0. ``details`` records ``k`` (plus what the caller adds)."""
    det = {"k": int(k), "unit": "percent", "ci": "clopper-pearson exact binomial 95%", **(details or {})}
    if n == 0:
        return MetricValue.undefined(empty_reason, n=0, details=det)
    lo, hi = clopper_pearson(k, n)
    return MetricValue(value=100.0 * k / n, ci95=(100.0 * lo, 100.0 * hi), n=int(n), details=det)


def _check(name: str, judgements: Sequence[str], n: int) -> None:
    if len(judgements) != n:
        raise ValueError(f"{name}: {len(judgements)} judgements for {n} facts")
    bad = sorted(set(judgements) - set(JUDGEMENTS))
    if bad:
        raise ValueError(f"{name}: unknown judgement(s) {bad}; expected {JUDGEMENTS}")


def lost_facts(clean: Sequence[str], corrupted: Sequence[str]) -> list[int]:
    """Indices of the facts lost through corruption (correct before, not correct after)."""
    return [i for i, (c, k) in enumerate(zip(clean, corrupted, strict=True))
            if c == "correct" and k != "correct"]


def restor_metrics(clean: Sequence[str], corrupted: Sequence[str],
                   unlearned: Sequence[str] | None = None) -> dict:
    """RESTOR metrics (module docstring) from per-fact judgements of the same facts, in order.

    Args:
        clean, corrupted: judgements of the clean and corrupted models, length |F|.
        unlearned: judgements of one unlearned model (``None``: only the clean/corrupted block).

    Returns ``{"n_facts", "lost": [indices], "clean": {...}, "corrupted": {...},
    "unlearned": {...} | None}``; each model block holds ``accuracy`` and
    ``corrupted_share`` (MetricValue dicts) and the unlearned block also ``recovery``,
    ``corrupted_share_lost`` and ``collateral``. Raises ``ValueError`` when the lengths differ
    or a judgement is unknown; an empty fact set or an empty lost set yields undefined metrics.
    """
    n = len(clean)
    _check("clean", clean, n)
    _check("corrupted", corrupted, n)
    lost = lost_facts(clean, corrupted)
    no_facts = "no facts: the clean model answered none of the evaluated questions correctly"

    def block(j: Sequence[str]) -> dict:
        return {"accuracy": proportion_metric(sum(x == "correct" for x in j), n, no_facts).to_dict(),
                "corrupted_share": proportion_metric(sum(x in _CARRIES_WRONG for x in j), n,
                                                     no_facts).to_dict(),
                "judgements": {name: sum(x == name for x in j) for name in JUDGEMENTS}}

    out = {"n_facts": n, "lost": lost, "clean": block(clean), "corrupted": block(corrupted),
           "unlearned": None}
    if unlearned is None:
        return out
    _check("unlearned", unlearned, n)
    ub = block(unlearned)
    no_lost = ("no fact was lost through corruption (the corrupted model still answers every fact "
               "correctly), so there is nothing to recover") if n else no_facts
    ub["recovery"] = proportion_metric(sum(unlearned[i] == "correct" for i in lost), len(lost), no_lost,
                                       {"formula": "recovered lost facts / facts lost through corruption"}
                                       ).to_dict()
    ub["corrupted_share_lost"] = proportion_metric(sum(unlearned[i] in _CARRIES_WRONG for i in lost),
                                                   len(lost), no_lost).to_dict()
    kept = [i for i in range(n) if corrupted[i] == "correct"]
    ub["collateral"] = proportion_metric(
        sum(unlearned[i] != "correct" for i in kept), len(kept),
        "the corrupted model answered no fact correctly: no intact fact could be broken",
        {"formula": "facts correct after corruption but not after unlearning / facts correct after corruption"}
    ).to_dict()
    out["unlearned"] = ub
    return out
