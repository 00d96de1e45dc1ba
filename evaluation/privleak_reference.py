"""The PrivLeak reference when several exact retrains (different training seeds) are available.

PrivLeak = (AUC_u − AUC_ref) / AUC_ref × 100 (MUSE, Shi et al. arXiv 2407.06460 §3, C3) compares the
unlearned model's Min-K% AUC with an exact retrain's on the same forget and holdout texts. One
retrain is one draw of a random training run: on small models trained from scratch the retrain's
AUC itself moves with the seed (demo model, 20 forget vs 40 holdout texts, seeds 0 and 1: 0.315 and
0.220, i.e. PrivLeak −30 % between two exact retrains). Hayes et al. ("Inexact unlearning needs
more careful evaluations to avoid a false sense of privacy", arXiv 2403.01218, §3–§4) make the
point that the right comparison is with the *distribution* of retrained models, not one of them.

With K ≥ 1 retrains:

- the point reference is the mean of their AUCs, AUC_ref = (1/K) Σ_k AUC_k;
- the 95 % CI of PrivLeak is a paired bootstrap (B resamples): each resample b draws forget and
  holdout indices once (shared by all models) and computes AUC_u,b and ref_b = (1/K) Σ_k AUC_k,b.
  With K ≥ 2 it adds the seed-to-seed variation as a prediction interval for *one more* training
  run (the unlearned model is one run, like each retrain): e_b = s · √(1 + 1/K) · T_b, where s is
  the sample standard deviation of the K AUCs and T_b a Student-t draw with K − 1 degrees of
  freedom, and PrivLeak_b = (AUC_u,b − ref_b − e_b) / ref_b × 100. An exact retrain with a fresh
  seed then falls outside the interval about as often as the nominal 5 % (tested), which a single
  retrain as reference does not give. With K = 1 it is the ordinary paired bootstrap and the
  seed variation is not measured (the caller says so);
- ``seed_spread`` lists each retrain's PrivLeak against the mean of the others (leave-one-out),
  the size of the difference two exact retrains show on these texts.

No Django; numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RetrainReference", "retrain_reference", "paired_privleak_ci"]


@dataclass(frozen=True)
class RetrainReference:
    """Retrained models' Min-K% AUC metrics usable as the PrivLeak reference.

    ``metrics``: the ``mink_auc`` MetricValue dicts (AUC > 0) of the K retrains, the primary
    (registered first) first; ``value``: their mean AUC; ``aucs``: the K AUCs;
    ``seed_spread``: leave-one-out PrivLeak (percent) of each retrain vs the mean of the others
    (empty for K = 1)."""

    metrics: list[dict] = field(default_factory=list)
    value: float | None = None
    aucs: list[float] = field(default_factory=list)
    seed_spread: list[float] = field(default_factory=list)

    @property
    def k(self) -> int:
        return len(self.metrics)


def _auc_ok(m: dict | None) -> bool:
    return bool(m) and m.get("status", "ok") == "ok" and m.get("value") is not None


def retrain_reference(primary: dict | None, others=()) -> RetrainReference:
    """The retrains' usable AUCs (value > 0; AUC 0 makes the relative PrivLeak undefined) and their
    mean. ``primary``/``others`` are ``mink_auc`` metric dicts (or ``None``). An ``other`` whose
    per-text score counts differ from the primary's (scored on other texts) is left out."""
    if not (_auc_ok(primary) and float(primary["value"]) > 0):
        return RetrainReference()  # no primary retrain, or its AUC is 0/undefined: the caller decides
    usable = [primary] + [m for m in others if _auc_ok(m) and float(m["value"]) > 0]
    n0 = primary.get("n")
    usable = [primary] + [m for m in usable[1:] if m.get("n") == n0]
    aucs = [float(m["value"]) for m in usable]
    mean = sum(aucs) / len(aucs)
    spread = []
    if len(aucs) > 1:
        for a in aucs:
            rest = (sum(aucs) - a) / (len(aucs) - 1)
            spread.append(round((a - rest) / rest * 100.0, 3))
    return RetrainReference(metrics=usable, value=mean, aucs=aucs, seed_spread=spread)


def paired_privleak_ci(u_auc: dict, refs: list[dict], resamples: int, seed: int = 0) -> list[float] | None:
    """95 % percentile CI of PrivLeak (percent) by the paired bootstrap of the module docstring.

    Args:
        u_auc: the unlearned model's ``mink_auc`` metric with ``details.scores`` =
            ``{"forget": [n_f floats], "holdout": [n_h floats]}`` (per-text Min-K% scores).
        refs: the retrains' ``mink_auc`` metrics, same texts (same n_f, n_h).
        resamples: B.
    The prediction term is applied to AUC_u,b (the same as subtracting it from the reference).
    Returns ``[lo, hi]``, or ``None`` when per-text scores are missing, the retrains scored other
    numbers of texts, or no resample has a reference AUC > 0.
    """
    import numpy as np

    from .stats import rank_auc

    us = (u_auc.get("details") or {}).get("scores")
    rs = [(r.get("details") or {}).get("scores") for r in refs]
    if not us or not rs or any(not s for s in rs):
        return None
    uf, uh = np.asarray(us["forget"], float), np.asarray(us["holdout"], float)
    if any(len(s["forget"]) != uf.size or len(s["holdout"]) != uh.size for s in rs):
        return None
    rng = np.random.default_rng(seed)
    fi = rng.integers(0, uf.size, size=(resamples, uf.size))
    hi = rng.integers(0, uh.size, size=(resamples, uh.size))
    au = rank_auc(uf[fi], uh[hi])
    ar_all = np.stack([rank_auc(np.asarray(s["forget"], float)[fi], np.asarray(s["holdout"], float)[hi])
                       for s in rs])  # (K, B)
    ar = ar_all.mean(axis=0)
    k = len(rs)
    if k > 1:
        aucs = np.asarray([float(r["value"]) for r in refs])
        sd = float(aucs.std(ddof=1))
        au = au - sd * np.sqrt(1.0 + 1.0 / k) * rng.standard_t(k - 1, size=resamples)
    ok = ar > 0
    if not ok.any():
        return None
    pl = (au[ok] - ar[ok]) / ar[ok] * 100.0
    lo, high = np.percentile(pl, [2.5, 97.5])
    return [float(lo), float(high)]
