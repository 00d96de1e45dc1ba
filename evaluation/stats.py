"""Metric values with sample sizes and bootstrap confidence intervals.

Confidence intervals are 95% percentile bootstrap intervals (Efron & Tibshirani,
"An Introduction to the Bootstrap", 1993, §13.3): resample with replacement B times
(seeded ``numpy.random.default_rng(seed)``), take the 2.5th and 97.5th percentiles
(``numpy.percentile``, linear interpolation) of the statistic. DESIGN §7 asks for a 95%
CI and the sample size of every metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["MetricValue", "bootstrap_mean_ci", "rank_auc"]


@dataclass(frozen=True)
class MetricValue:
    """One metric: value, 95% CI, sample size and status.

    Attributes:
        value: the point estimate (``None`` when undefined). Units are metric-specific:
            VerbMem/KnowMem in ROUGE-L F1 points × 100 (0..100), AUCs in [0, 1].
        ci95: ``(low, high)`` percentile-bootstrap interval in the same units, or ``None``.
        n: sample size (an int, or a dict such as ``{"forget": 40, "holdout": 40}``).
        status: ``"ok"`` or ``"undefined"``.
        reason: why the metric is undefined (``None`` when ok).
        details: extra JSON-serialisable information (e.g. excluded items).
    """

    value: float | None
    ci95: tuple[float, float] | None
    n: int | dict
    status: Literal["ok", "undefined"] = "ok"
    reason: str | None = None
    details: dict = field(default_factory=dict)

    @classmethod
    def undefined(cls, reason: str, n: int | dict = 0, details: dict | None = None) -> MetricValue:
        """An undefined metric with a plain-language reason (never a silent default)."""
        return cls(
            value=None, ci95=None, n=n, status="undefined", reason=reason, details=details or {}
        )

    @property
    def ok(self) -> bool:
        """True when the metric has a value."""
        return self.status == "ok" and self.value is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with keys ``value, ci95, n, status, reason, details``
        (``ci95`` as a 2-list or ``None``)."""
        return {
            "value": None if self.value is None else float(self.value),
            "ci95": None if self.ci95 is None else [float(self.ci95[0]), float(self.ci95[1])],
            "n": dict(self.n) if isinstance(self.n, dict) else int(self.n),
            "status": self.status,
            "reason": self.reason,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, d: dict) -> MetricValue:
        """Inverse of :meth:`to_dict`. Raises ``KeyError`` on a missing ``value``/``n``."""
        ci = d.get("ci95")
        return cls(
            value=d["value"],
            ci95=None if ci is None else (float(ci[0]), float(ci[1])),
            n=d["n"],
            status=d.get("status", "ok"),
            reason=d.get("reason"),
            details=dict(d.get("details") or {}),
        )


def bootstrap_mean_ci(
    values, n_resamples: int = 1000, seed: int = 0, scale: float = 1.0
) -> MetricValue:
    """Mean of ``values`` (shape ``(n,)``) × ``scale`` with a 95% percentile bootstrap CI.

    Returns an ``undefined`` MetricValue if ``values`` is empty or contains non-finite
    numbers. With ``n_resamples == 0`` the CI is ``None``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return MetricValue.undefined("no samples", n=0)
    if not np.all(np.isfinite(v)):
        return MetricValue.undefined("non-finite per-sample values", n=int(v.size))
    mean = float(v.mean()) * scale
    ci = None
    if n_resamples > 0:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, v.size, size=(n_resamples, v.size))
        means = v[idx].mean(axis=1) * scale
        lo, hi = np.percentile(means, [2.5, 97.5])
        ci = (float(lo), float(hi))
    return MetricValue(value=mean, ci95=ci, n=int(v.size))


def rank_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC P(neg < pos) + ½·P(neg = pos), vectorised over leading axes.

    ``pos`` shape ``(..., n_pos)``, ``neg`` shape ``(..., n_neg)``; returns shape ``(...)``.
    Formula: AUC = (R_pos − n_pos(n_pos+1)/2) / (n_pos·n_neg) with R_pos the sum of the
    mid-ranks of ``pos`` in the pooled sample (Mann & Whitney 1947; Hanley & McNeil 1982).
    """
    from scipy.stats import rankdata

    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    n_pos, n_neg = pos.shape[-1], neg.shape[-1]
    pooled = np.concatenate([pos, neg], axis=-1)
    ranks = rankdata(pooled, method="average", axis=-1)
    r_pos = ranks[..., :n_pos].sum(axis=-1)
    return (r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def is_finite_number(x) -> bool:
    """True for an int/float that is finite (bools excluded)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
