"""The ``classifier`` evaluation profile (DESIGN §11; issue 19 item 4).

Metrics of one classifier on the forget set D_f, the retain set D_r (the manifest's evaluation
sample) and the test set (the corpus's holdout split, never trained on); percentages (0…100) of
per-example 0/1 outcomes, each with its sample size and a 95 % Clopper–Pearson exact binomial
interval (Clopper & Pearson 1934; ``scipy.stats.binomtest(...).proportion_ci("exact")``) —
**deviation** from DESIGN §7's bootstrap: a bootstrap of one person's 1–10 outcomes collapses to a
point (e.g. [100, 100] for n = 1), the exact interval does not:

- ``ua`` (unlearning accuracy) = 100·(1 − acc(D_f)); ``ra`` = 100·acc(D_r); ``ta`` = 100·acc(test)
  (Jia et al., NeurIPS 2023, arXiv 2304.04934, §5 "Unlearning evaluation").
- ``mia_efficacy`` = the share (%) of D_f that a membership-inference attack calls *non-member*:
  the SVC attack of Unlearn-Sparse ``evaluation/SVC_MIA.py`` (Song & Mittal, USENIX Security 2021):
  an RBF SVC (``C=3, gamma="auto"``) trained on a per-example feature of the evaluated model's
  softmax output, with the retain examples as members (label 1) and the test examples as
  non-members (label 0), both cut to the smaller count (a seeded subset of the larger), then
  applied to D_f. Features (:func:`svc_mia_features`): ``confidence`` p_y, ``entropy``
  −Σ_j p_j log p_j, ``m_entropy`` (modified entropy, Song & Mittal Eq. 7)
  −(1−p_y)·log p_y − Σ_{j≠y} p_j·log(1−p_j). ``mia_efficacy`` is the confidence attack (the number
  Unlearn-Sparse reports); the other two are ``mia_entropy`` and ``mia_m_entropy``. The CI holds
  nothing of the attack's own training variance.
  ``mia_test_nonmember``: the confidence attack's non-member share on the test set it was trained
  on (in-sample, so optimistic): the MIA reference when no retrained model exists.

Log arguments are clamped at 1e-30 (as Unlearn-Sparse's ``log(max(p, 1e-30))``).
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from ..stats import MetricValue

PROFILE_NAME = "classifier"
PROFILE_VERSION = 1
SVC_PARAMS = {"kernel": "rbf", "C": 3.0, "gamma": "auto"}
MIA_FEATURES = ("confidence", "entropy", "m_entropy")
_EPS = 1e-30


def svc_mia_features(probs, labels) -> dict[str, np.ndarray]:
    """Per-example attack features of softmax ``probs`` (N, C) and true ``labels`` (N,):
    ``{"confidence", "entropy", "m_entropy"}`` → (N,) float64 arrays (module docstring formulas)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n = p.shape[0]
    py = p[np.arange(n), y]
    ent = -(p * np.log(np.maximum(p, _EPS))).sum(1)
    log1m = np.log(np.maximum(1.0 - p, _EPS))
    mod = p * log1m
    mod[np.arange(n), y] = 0.0
    m_ent = -(1.0 - py) * np.log(np.maximum(py, _EPS)) - mod.sum(1)
    return {"confidence": py, "entropy": ent, "m_entropy": m_ent}


def svc_mia(member: dict, nonmember: dict, target: dict, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-feature SVC attack (module docstring): features dicts from :func:`svc_mia_features`;
    returns ``{feature: (N_target,) 1.0 where the target example is called non-member}``.

    Raises:
        ValueError: an empty member, non-member or target set.
    """
    from sklearn.svm import SVC

    nm, nn_, nt = (len(next(iter(d.values()))) for d in (member, nonmember, target))
    if min(nm, nn_, nt) == 0:
        raise ValueError("the SVC attack needs non-empty member, non-member and target sets")
    rng = np.random.default_rng(seed)
    k = min(nm, nn_)
    im = np.sort(rng.choice(nm, k, replace=False))
    inn = np.sort(rng.choice(nn_, k, replace=False))
    out = {}
    for f in MIA_FEATURES:
        x = np.concatenate([member[f][im], nonmember[f][inn]]).reshape(-1, 1)
        y = np.concatenate([np.ones(k), np.zeros(k)])
        clf = SVC(**SVC_PARAMS).fit(x, y)
        out[f] = (clf.predict(np.asarray(target[f]).reshape(-1, 1)) == 0).astype(np.float64)
    return out


def classifier_profile(bootstrap_resamples: int = 1000, seed: int = 0, family: str = "") -> dict:
    """The pinned profile written into reports and certificates."""
    return {"name": PROFILE_NAME, "version": PROFILE_VERSION, "family": family,
            "metrics": ["ua", "ra", "ta", "mia_efficacy", "mia_entropy", "mia_m_entropy"], "units": "percent",
            "mia": {"attack": "SVC (Unlearn-Sparse evaluation/SVC_MIA.py; Song & Mittal 2021)", **SVC_PARAMS,
                    "features": list(MIA_FEATURES), "members": "retain", "non_members": "test (holdout)",
                    "efficacy_feature": "confidence"},
            "ci": {"method": "Clopper-Pearson exact binomial interval over examples", "level": 0.95},
            "seed": seed, "dtype": "fp32 softmax"}


def proportion_metric(values) -> dict:
    """Mean of 0/1 ``values`` × 100 with the 95 % Clopper–Pearson interval (×100), as a MetricValue dict."""
    from scipy.stats import binomtest

    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return MetricValue.undefined("no samples", n=0).to_dict()
    k = int(round(v.sum()))
    ci = binomtest(k, int(v.size)).proportion_ci(confidence_level=0.95, method="exact")
    return MetricValue(value=100.0 * k / v.size, ci95=(100.0 * ci.low, 100.0 * ci.high), n=int(v.size)).to_dict()


def _pct(values, _n_resamples: int = 0, _seed: int = 0) -> dict:
    return proportion_metric(values)


def evaluate_classifier(model, *, forget: Sequence, retain: Sequence, test: Sequence, manifest=None,
                        bootstrap_resamples: int = 1000, seed: int = 0) -> dict:
    """Report of ``model`` (a :class:`~unlearning_engine.families.classifier.model.ClassifierNet`)
    on LabeledExample splits: ``{"profile", "metrics": {name: MetricValue dict}, "n", "seconds",
    "manifest_sha256"?}``. A split that is empty makes the metrics that need it ``undefined``."""
    from unlearning_engine.families.classifier.data import to_tensors
    from unlearning_engine.families.classifier.train import predict

    t0 = time.perf_counter()
    out: dict = {}
    feats = {}
    for name, split in (("forget", forget), ("retain", retain), ("test", test)):
        x, y = to_tensors(list(split))
        p, _ = predict(model, x) if len(split) else (torch.zeros(0, 1), None)
        correct = (p.argmax(1) == y).double().numpy() if len(split) else np.zeros(0)
        out[name] = correct
        feats[name] = svc_mia_features(p.numpy(), y.numpy()) if len(split) else None
    metrics = {"ua": _pct(1.0 - out["forget"], bootstrap_resamples, seed) if len(forget) else
               MetricValue.undefined("empty forget set").to_dict(),
               "ra": _pct(out["retain"], bootstrap_resamples, seed),
               "ta": _pct(out["test"], bootstrap_resamples, seed)}
    if all(feats[s] is not None for s in ("forget", "retain", "test")):
        called = svc_mia(feats["retain"], feats["test"], feats["forget"], seed=seed)
        for f, key in zip(MIA_FEATURES, ("mia_efficacy", "mia_entropy", "mia_m_entropy"), strict=True):
            m = proportion_metric(called[f])
            m["details"] = {"feature": f, "attack_train_per_class": int(min(len(retain), len(test)))}
            metrics[key] = m
        on_test = svc_mia(feats["retain"], feats["test"], feats["test"], seed=seed)["confidence"]
        metrics["mia_test_nonmember"] = _pct(on_test, 0, seed)  # reference without a retrained model
    else:
        for key in ("mia_efficacy", "mia_entropy", "mia_m_entropy"):
            metrics[key] = MetricValue.undefined("the attack needs non-empty forget, retain and test sets").to_dict()
    report = {"profile": classifier_profile(bootstrap_resamples, seed, getattr(getattr(model, "cfg", None), "family", "")),
              "metrics": metrics, "n": {"forget": len(forget), "retain": len(retain), "test": len(test)},
              "seconds": round(time.perf_counter() - t0, 3)}
    if manifest is not None:
        report["manifest_sha256"] = manifest.sha256
    return report
