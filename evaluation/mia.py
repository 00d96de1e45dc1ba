"""Membership-inference AUC and PrivLeak (MUSE, arXiv 2407.06460, §3 "PrivLeak").

Orientation (MUSE, DESIGN §7): scores are "lower = more likely a member" (e.g. Min-K%
score = −mean of the lowest log-probs) and

    AUC = P(s_holdout < s_forget) + ½·P(s_holdout = s_forget)

so a model that memorised the forget set (low forget scores) has AUC ≈ 0, a model that
never saw it (ideal retrain) ≈ 0.5, and over-unlearning pushes it towards 1.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from .stats import MetricValue, rank_auc

__all__ = ["DEFAULT_MIN_SIZE", "REFERENCE_TYPES", "mia_auc", "privleak", "privleak_metric"]

#: Minimum number of items per split for an AUC to be reported (DESIGN §7).
DEFAULT_MIN_SIZE = 5


def mia_auc(
    forget_scores: Sequence[float],
    holdout_scores: Sequence[float],
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    forget_keys: Iterable[Hashable] | None = None,
    holdout_keys: Iterable[Hashable] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> MetricValue:
    """AUC = P(s_holdout < s_forget) with ties counted ½ (MUSE arXiv 2407.06460 §3).

    Computed with ``sklearn.metrics.roc_auc_score`` with forget = positive class (label 1)
    and the score itself as the decision value: ROC-AUC = P(s_pos > s_neg) + ½·P(tie)
    = P(s_holdout < s_forget) + ½·P(tie). CI: 95% percentile bootstrap that resamples the
    forget and the holdout sets independently (``n_bootstrap`` resamples, ``seed``).

    Args:
        forget_scores: shape ``(n_f,)``; scores of forget-set texts, lower = member.
        holdout_scores: shape ``(n_h,)``; scores of never-trained-on texts.
        min_size: minimum size of each split (default 5).
        forget_keys / holdout_keys: optional identities (texts, record ids) of the items;
            any shared key makes the AUC undefined (the sets must be disjoint).

    Returns a :class:`MetricValue` with ``n = {"forget": n_f, "holdout": n_h}``; it is
    ``undefined`` (with a reason, never a silent 0.5) when a split is empty or below
    ``min_size``, the sets overlap, or a score is not finite. Raises nothing on bad data.
    """
    f = np.asarray(list(forget_scores), dtype=np.float64).ravel()
    h = np.asarray(list(holdout_scores), dtype=np.float64).ravel()
    n = {"forget": int(f.size), "holdout": int(h.size)}
    if f.size == 0 or h.size == 0:
        which = " and ".join(k for k, a in (("forget", f), ("holdout", h)) if a.size == 0)
        return MetricValue.undefined(f"empty {which} set: AUC needs both classes", n=n)
    if f.size < min_size or h.size < min_size:
        return MetricValue.undefined(
            f"split below the minimum size {min_size} (forget={f.size}, holdout={h.size})", n=n
        )
    if forget_keys is not None and holdout_keys is not None:
        shared = set(forget_keys) & set(holdout_keys)
        if shared:
            return MetricValue.undefined(
                f"forget and holdout sets overlap ({len(shared)} shared items); they must be disjoint",
                n=n,
            )
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(h))):
        return MetricValue.undefined("non-finite membership score", n=n)
    labels = np.concatenate([np.ones(f.size), np.zeros(h.size)])
    value = float(roc_auc_score(labels, np.concatenate([f, h])))
    ci = None
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        fb = f[rng.integers(0, f.size, size=(n_bootstrap, f.size))]
        hb = h[rng.integers(0, h.size, size=(n_bootstrap, h.size))]
        aucs = rank_auc(fb, hb)
        lo, hi = np.percentile(aucs, [2.5, 97.5])
        ci = (float(lo), float(hi))
    return MetricValue(
        value=value, ci95=ci, n=n, details={"orientation": "P(s_holdout < s_forget)"}
    )


def privleak(auc_unlearned: float, auc_reference: float) -> float:
    """PrivLeak = (AUC_unlearned − AUC_reference) / AUC_reference × 100, in percent.

    Source: MUSE arXiv 2407.06460 §3 (reference = the retrained model's AUC; DESIGN §7
    allows a supplied value or the ideal 0.5). Pass band in DESIGN §7: [−5, 5].
    Example: privleak(0.3, 0.5) = −40.0.

    Raises ``ValueError`` if an AUC is not a finite number in [0, 1] or the reference is 0.
    """
    for name, v in (("auc_unlearned", auc_unlearned), ("auc_reference", auc_reference)):
        if v is None or not math.isfinite(float(v)) or not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"{name} must be a finite number in [0, 1], got {v!r}")
    if float(auc_reference) == 0.0:
        raise ValueError("auc_reference is 0: PrivLeak is undefined")
    return (float(auc_unlearned) - float(auc_reference)) / float(auc_reference) * 100.0


#: Reference types for PrivLeak (DESIGN §7), in order of preference.
REFERENCE_TYPES = ("retrain", "supplied", "ideal")


def privleak_metric(
    auc: MetricValue,
    reference_auc: float | None = None,
    reference_type: str | None = None,
    band: float = 5.0,
) -> tuple[MetricValue, dict]:
    """PrivLeak as a :class:`MetricValue` plus a summary block, from a Min-K% AUC.

    PrivLeak = (AUC − AUC_ref) / AUC_ref × 100 (MUSE arXiv 2407.06460 §3, :func:`privleak`).
    AUC_ref (DESIGN §7): the exact retrained model's AUC on the same texts
    (``reference_type="retrain"``), else a value supplied with the corpus (``"supplied"``,
    the default type when ``reference_auc`` is given), else 0.5 flagged ``"ideal"``.
    The CI maps the AUC's bootstrap CI through the formula with the reference held fixed
    (PrivLeak is increasing in the AUC).

    Returns ``(metric, block)`` with ``block = {"value", "ci95", "auc", "reference",
    "reference_type", "flagged", "band"}``. The metric is ``undefined`` (never a silent
    value) when the AUC is undefined or the reference is not in (0, 1].
    """
    if reference_auc is None:
        ref, rtype = 0.5, "ideal"
    else:
        ref, rtype = reference_auc, reference_type or "supplied"
    if rtype not in REFERENCE_TYPES:
        raise ValueError(f"reference_type must be one of {REFERENCE_TYPES}, got {rtype!r}")
    block = {
        "value": None,
        "ci95": None,
        "auc": auc.value,
        "reference": ref,
        "reference_type": rtype,
        "flagged": rtype != "retrain",
        "band": [-band, band],
    }
    details = {"reference": ref, "reference_type": rtype, "flagged": rtype != "retrain"}
    if not auc.ok:
        return MetricValue.undefined(
            f"Min-K% AUC undefined: {auc.reason}", n=auc.n, details=details
        ), block
    try:
        value = privleak(float(auc.value), float(ref))
    except (TypeError, ValueError) as exc:
        return MetricValue.undefined(f"PrivLeak reference invalid: {exc}", n=auc.n,
                                     details=details), block
    ci = None
    if auc.ci95 is not None:
        ci = (privleak(auc.ci95[0], float(ref)), privleak(auc.ci95[1], float(ref)))
    block.update(value=value, ci95=None if ci is None else list(ci))
    details["ci_note"] = "AUC bootstrap CI mapped with the reference held fixed"
    return MetricValue(value=value, ci95=ci, n=auc.n, details=details), block
