"""U-LiRA: a per-example likelihood-ratio membership test for unlearning (Hayes et al., "Inexact
unlearning needs more careful evaluations to avoid a false sense of privacy", arXiv 2403.01218,
§4; built on LiRA, Carlini et al., "Membership inference attacks from first principles", S&P 2022).

Question asked: looking at one example's output on the unlearned model θ_u, can an attacker tell
whether the example was *trained on and then unlearned* by the method, or *never trained on* (what
an exact retrain gives)? Accuracy ≈ 50 % means the method is indistinguishable from retraining on
these examples; the higher, the more the unlearning leaves a trace.

Protocol (our reading of Hayes et al. §4, sized to models that train in seconds):

1. Targets T = D_f (truth "unlearned", label 1) ∪ E (truth "never trained", label 0), E a seeded
   sample of |D_f| test (holdout) examples, so the target set is balanced (n = 2|D_f|).
2. Shadows k = 1…K (K even): a balanced inclusion design (:func:`inclusion_matrix`) puts each
   target in exactly K/2 shadows. Shadow k trains the family recipe from a fresh seeded
   initialisation on D_r ∪ T_in(k), then runs *the same unlearning method* to forget T_in(k);
   its outputs on every target give "unlearned" samples (targets in T_in(k)) and "never trained"
   samples (the others).
3. Statistic: the logit-scaled confidence φ(x, y) = z_y − log Σ_{j≠y} e^{z_j} (= log(p_y/(1−p_y)),
   LiRA Eq. 4, computed from the logits z for stability).
4. Per target i: Gaussians N(μ_in,i, σ_in²) and N(μ_out,i, σ_out²) with per-example means over its
   K/2 in / K/2 out shadows and **one pooled variance per side** (LiRA's "fixed variance" variant,
   Carlini et al. §VI-C, the choice for few shadows).
5. Decision on the evaluated model: "unlearned" when log N(φ_i; μ_in,i, σ_in) > log N(φ_i; μ_out,i,
   σ_out) (likelihood ratio > 1: the Bayes rule for the balanced prior). U-LiRA accuracy =
   100 · mean(decision == truth) over the 2|D_f| targets, with its 95 % Clopper–Pearson interval.

**Deviations** from Hayes et al.: one evaluated model (the real θ_u) instead of many target models,
so the CI is that of 2|D_f| decisions; few shadows (K is a setting, small by default) with pooled
variances; the retain set is the real D_r (not a random half of the data).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..stats import MetricValue

#: the model(s) a shadow needs: callable(k, train_set, seed) -> opaque "world" (e.g. artifact dirs)
ShadowTrainer = Callable[[int, list, int], object]
#: callable(world, forget, retain, k) -> the unlearned shadow model (a ClassifierNet)
ShadowUnlearner = Callable[[object, list, list, int], object]
MIN_SD = 1e-3


@torch.no_grad()
def logit_confidence(model, examples: Sequence) -> np.ndarray:
    """φ_i = z_{y_i} − logsumexp_{j≠y_i} z_j (nats, float64 (N,)) of LabeledExamples on ``model``."""
    from unlearning_engine.families.classifier.data import to_tensors

    if not examples:
        return np.zeros(0)
    x, y = to_tensors(list(examples))
    model.eval()
    dev = next(model.parameters()).device
    z = model(x.to(dev))[0].float().cpu().double()
    zy = z.gather(1, y.view(-1, 1)).squeeze(1)
    others = z.scatter(1, y.view(-1, 1), float("-inf"))
    return (zy - torch.logsumexp(others, dim=1)).numpy()


def inclusion_matrix(n_targets: int, n_shadows: int, seed: int = 0) -> np.ndarray:
    """(K, n) bool: shadows in complementary pairs — shadow 2j takes a random half of the targets
    (⌈n/2⌉ or ⌊n/2⌋ of them, ``numpy.random.default_rng(seed)``), shadow 2j+1 the other half — so
    every target is in exactly K/2 shadows and, for n ≥ 2, no shadow forgets nothing.

    Raises:
        ValueError: K odd or < 2.
    """
    if n_shadows < 2 or n_shadows % 2:
        raise ValueError(f"U-LiRA needs an even number of shadow models >= 2, got {n_shadows}")
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(n_shadows // 2):
        half = np.zeros(n_targets, dtype=bool)
        half[rng.permutation(n_targets)[: (n_targets + (j % 2)) // 2]] = True
        rows += [half, ~half]
    return np.stack(rows)


@dataclass(frozen=True)
class ShadowGaussians:
    """Per-target means (n,) and pooled standard deviations of the "unlearned" (in) and "never
    trained" (out) shadow statistics."""

    mu_in: np.ndarray
    mu_out: np.ndarray
    sd_in: float
    sd_out: float


def fit_shadow_gaussians(phi: np.ndarray, inclusion: np.ndarray) -> ShadowGaussians:
    """Fit step 4 of the module docstring: ``phi`` (K, n) shadow statistics, ``inclusion`` (K, n).

    Pooled SD per side = sqrt(Σ (φ − μ_i)² / (count − n)) (the within-example variance, n degrees
    of freedom used by the means), floored at ``MIN_SD``. With K = 2 (one sample per side) no
    variance is estimable: both SDs are ``MIN_SD`` and the decision is the nearer mean.
    """
    inc = inclusion.astype(bool)
    k_in, k_out = inc.sum(0), (~inc).sum(0)
    if (k_in == 0).any() or (k_out == 0).any():
        raise ValueError("every target needs at least one 'in' and one 'out' shadow")
    mu_in = np.where(inc, phi, 0.0).sum(0) / k_in
    mu_out = np.where(~inc, phi, 0.0).sum(0) / k_out

    def pooled(mask, mu):
        dev = np.where(mask, phi - mu, 0.0) ** 2
        dof = mask.sum() - mask.shape[1]
        return max(math.sqrt(dev.sum() / dof) if dof > 0 else 0.0, MIN_SD)

    return ShadowGaussians(mu_in, mu_out, pooled(inc, mu_in), pooled(~inc, mu_out))


def log_likelihood_ratio(phi: np.ndarray, g: ShadowGaussians) -> np.ndarray:
    """log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out), (n,)."""
    def logpdf(x, mu, sd):
        return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)

    return logpdf(phi, g.mu_in, g.sd_in) - logpdf(phi, g.mu_out, g.sd_out)


def ulira_accuracy(phi_shadow: np.ndarray, inclusion: np.ndarray, phi_target: np.ndarray,
                   truth: np.ndarray) -> dict:
    """U-LiRA accuracy (percent MetricValue dict) from the shadows' (K, n) and the evaluated
    model's (n,) statistics; ``truth`` (n,) 1 = unlearned, 0 = never trained."""
    from .classifier import proportion_metric

    g = fit_shadow_gaussians(phi_shadow, inclusion)
    llr = log_likelihood_ratio(phi_target, g)
    pred = (llr > 0).astype(np.int64)
    t = np.asarray(truth).astype(np.int64)
    m = proportion_metric((pred == t).astype(np.float64))
    m["details"] = {"n_shadows": int(phi_shadow.shape[0]), "n_unlearned": int(t.sum()),
                    "n_never_trained": int((1 - t).sum()),
                    "tpr_unlearned": float(pred[t == 1].mean()) if (t == 1).any() else None,
                    "fpr_never_trained": float(pred[t == 0].mean()) if (t == 0).any() else None,
                    "sd_in": g.sd_in, "sd_out": g.sd_out,
                    "mean_gap_in_out": float(np.mean(g.mu_in - g.mu_out)) if len(t) else None}
    return m


def ulira_targets(forget: Sequence, test: Sequence, seed: int = 0, retain: Sequence = ()) -> tuple[list, np.ndarray]:
    """(targets, truth): D_f then a seeded sample of k = min(|D_f|, |usable test|) test examples (D_f
    itself cut to a seeded k when the test set is smaller, so the set stays balanced); a test
    example with the same content (features, label) as a forget or retain record is not usable (a
    shadow could not forget it without forgetting a retained duplicate; digits has such twins)."""
    seen = {e.content_digest() for e in (*forget, *retain)}
    usable = [e for e in test if e.content_digest() not in seen]
    k = min(len(forget), len(usable))
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(usable), k, replace=False)) if k else []
    fidx = np.sort(rng.choice(len(forget), k, replace=False)) if k < len(forget) else range(len(forget))
    targets = [forget[i] for i in fidx] + [usable[i] for i in idx]
    return targets, np.concatenate([np.ones(len(targets) - k), np.zeros(k)]).astype(np.int64)


def ulira_shadow_statistics(targets: Sequence, retain: Sequence, inclusion: np.ndarray, *,
                            train: ShadowTrainer, unlearn: ShadowUnlearner, seed: int = 0,
                            worlds: list | None = None) -> tuple[np.ndarray, list]:
    """Step 2: for each shadow k train on D_r ∪ T_in(k) (``train``) and unlearn T_in(k)
    (``unlearn``); returns (φ (K, n), the trained worlds, reusable across methods via ``worlds``)."""
    K = inclusion.shape[0]
    phi = np.zeros((K, len(targets)))
    worlds = list(worlds) if worlds is not None else []
    for k in range(K):
        t_in = [targets[i] for i in np.flatnonzero(inclusion[k])]
        if k >= len(worlds):
            worlds.append(train(k, list(retain) + t_in, seed * 1000 + k + 1))
        model = unlearn(worlds[k], t_in, list(retain), k)
        phi[k] = logit_confidence(model, targets)
    return phi, worlds


def ulira_metric(model, *, forget: Sequence, retain: Sequence, test: Sequence, n_shadows: int,
                 train: ShadowTrainer, unlearn: ShadowUnlearner, seed: int = 0) -> dict:
    """U-LiRA accuracy of ``model`` (the real unlearned model) on D_f vs test examples (module
    docstring); an ``undefined`` MetricValue dict when D_f or the test set is empty or K < 2."""
    if not forget or not test:
        return MetricValue.undefined("U-LiRA needs a non-empty forget set and test set").to_dict()
    if n_shadows < 2 or n_shadows % 2:
        return MetricValue.undefined(f"U-LiRA needs an even shadow count >= 2 (got {n_shadows})").to_dict()
    targets, truth = ulira_targets(forget, test, seed, retain)
    if not (truth == 0).any():
        return MetricValue.undefined("U-LiRA: no test example differs from every training record").to_dict()
    inc = inclusion_matrix(len(targets), n_shadows, seed)
    phi, _ = ulira_shadow_statistics(targets, retain, inc, train=train, unlearn=unlearn, seed=seed)
    return ulira_accuracy(phi, inc, logit_confidence(model, targets), truth)


def profile_entry(n_shadows: int, method: str) -> dict:
    """What the certificate's evaluation profile says about the U-LiRA run."""
    return {"attack": "U-LiRA (Hayes et al. 2024, arXiv 2403.01218 §4; LiRA fixed-variance, Carlini et al. 2022)",
            "statistic": "logit-scaled confidence z_y - logsumexp_{j!=y} z_j", "n_shadows": int(n_shadows),
            "shadow_unlearning_method": method, "targets": "forget set (unlearned) + equal number of test examples "
            "(never trained)", "decision": "likelihood ratio > 1", "chance_level": 50.0}
