"""Worst-case forget sets (Fan et al., "Challenging Forgets: Unveiling the Worst-Case Forget Sets
in Machine Unlearning", ECCV 2024, §4; Unlearn-WorstCase ``data-wise``). A stress test, never a
certificate (DESIGN §11).

Bi-level problem over relaxed selection weights w ∈ S = {w ∈ [0, 1]^n : Σ w = m} on a candidate
pool (the training set):

    min_{w ∈ S}  Σ_i w_i ℓ_i(θ*(w)) + γ ‖w‖²     s.t.  θ*(w) ≈ K sign-SGD steps of the unlearner
                                                   from θ_o on its w-weighted objective

— the forget set whose examples keep the *lowest* loss after unlearning, i.e. the hardest to
forget. With sign-SGD the lower-level map θ_K(w) = θ_o − α Σ_k sign(∇ℓ_MU(θ_k; w)) is piecewise
constant in w, so the upper gradient is the partial one: g_i = ℓ_i(θ_K) + 2γ w_i (Fan et al. §4,
"sign-SGD based" solution). Upper step w ← P_S(w − η g); after T steps the set is the top-m of w.

P_S (:func:`project_capped_simplex`): w = clip(v − μ, 0, 1) with μ found by bisection so that
Σ w = m (the KKT form of the Euclidean projection onto the capped simplex; Σ clip(v − μ, 0, 1) is
non-increasing in μ, equal to n at μ = min v − 1 and 0 at μ = max v).

Lower-level objectives (:func:`classifier_lower_objective`; ℓ = per-example CE, r_i = 1 − w_i):
``ft``, ``retrain``, ``dp2``, ``laf``, ``laf_r``: Σ r_i ℓ_i / Σ r_i (fine-tuning on the retain
weights; **deviation**: retrain/dp2/laf have no weighted few-step form, FT stands in);
``l1_sparse``: the same + γ_ℓ1 ‖θ‖₁ / N; ``ga``: −Σ w_i ℓ_i / m; ``rl``: (Σ w_i ℓ(x_i, y'_i) +
Σ r_i ℓ_i) / n with seeded other-class labels y'.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

FT_LIKE = ("ft", "retrain", "dp2", "laf", "laf_r")


def project_capped_simplex(v, m: float, *, tol: float = 1e-10, max_iter: int = 200) -> np.ndarray:
    """Euclidean projection of ``v`` (n,) onto {0 ≤ w ≤ 1, Σ w = m} by bisection on μ (module docstring).

    Raises:
        ValueError: m outside [0, n] or a non-finite ``v``.
    """
    v = np.asarray(v, dtype=np.float64)
    n = v.size
    if not 0 <= m <= n:
        raise ValueError(f"the forget-set size m = {m} must lie in [0, {n}]")
    if not np.isfinite(v).all():
        raise ValueError("weights must be finite")
    lo, hi = float(v.min()) - 1.0, float(v.max())
    for _ in range(max_iter):
        mu = 0.5 * (lo + hi)
        s = np.clip(v - mu, 0.0, 1.0).sum()
        if abs(s - m) <= tol:
            break
        lo, hi = (mu, hi) if s > m else (lo, mu)
    return np.clip(v - mu, 0.0, 1.0)


def top_m(w, m: int) -> np.ndarray:
    """Indices (sorted) of the m largest weights (ties: the lower index first)."""
    order = np.lexsort((np.arange(len(w)), -np.asarray(w)))
    return np.sort(order[:m])


@dataclass(frozen=True)
class WorstCaseConfig:
    """T upper steps of size η, K lower sign-SGD steps of size α, regulariser γ."""

    upper_steps: int = 20
    upper_lr: float = 0.5
    lower_steps: int = 5
    lower_lr: float = 1e-3
    gamma: float = 1e-3
    l1_gamma: float = 5.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def classifier_lower_objective(method: str, x: torch.Tensor, y: torch.Tensor, n_classes: int, *,
                               l1_gamma: float = 5.0, seed: int = 0) -> Callable:
    """``objective(model, w) -> scalar`` of the module docstring for ``method``; x (n, D), y (n,), w (n,)."""
    gen = torch.Generator().manual_seed(seed)
    y_rand = (y + 1 + torch.randint(0, n_classes - 1, y.shape, generator=gen)) % n_classes

    def ce(model, labels):
        return F.cross_entropy(model(x)[0].float(), labels, reduction="none")

    def objective(model, w):
        r = 1.0 - w
        if method == "ga":
            return -(w * ce(model, y)).sum() / w.sum().clamp(min=1e-12)
        if method == "rl":
            return ((w * ce(model, y_rand)).sum() + (r * ce(model, y)).sum()) / len(w)
        loss = (r * ce(model, y)).sum() / r.sum().clamp(min=1e-12)
        if method == "l1_sparse":
            params = [p for p in model.parameters() if p.requires_grad]
            loss = loss + l1_gamma * sum(p.abs().sum() for p in params) / sum(p.numel() for p in params)
        return loss

    return objective


def select_worst_case(model, m: int, *, per_example_loss: Callable, lower_objective: Callable,
                      config: WorstCaseConfig = WorstCaseConfig()) -> dict:
    """Bi-level worst-case selection (module docstring) from ``model`` (θ_o, not modified).

    ``per_example_loss(model) -> (n,)`` tensor over the pool; ``lower_objective(model, w)`` the
    unlearner's weighted loss. Returns ``{"indices" (sorted top-m), "weights", "history"
    (upper objective per step), "seconds", "config"}``.
    """
    t0 = time.perf_counter()
    with torch.no_grad():
        n = int(per_example_loss(model).numel())
    w = np.full(n, m / n)
    history = []
    for _ in range(config.upper_steps):
        theta = copy.deepcopy(model).train()
        params = [p for p in theta.parameters() if p.requires_grad]
        wt = torch.tensor(w, dtype=torch.float32)
        for _k in range(config.lower_steps):
            grads = torch.autograd.grad(lower_objective(theta, wt), params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    if g is not None:  # a parameter the objective does not touch keeps its value
                        p.sub_(config.lower_lr * torch.sign(g))
        theta.eval()
        with torch.no_grad():
            losses = per_example_loss(theta).double().numpy()
        history.append(float((w * losses).sum() + config.gamma * (w ** 2).sum()))
        w = project_capped_simplex(w - config.upper_lr * (losses + 2 * config.gamma * w), m)
    return {"indices": top_m(w, m).tolist(), "weights": w.tolist(), "history": history,
            "seconds": round(time.perf_counter() - t0, 3), "config": config.to_dict()}


def classifier_worst_case(model, pool: Sequence, m: int, method: str = "ft",
                          config: WorstCaseConfig = WorstCaseConfig()) -> dict:
    """Worst-case forget set of size ``m`` from ``pool`` (LabeledExamples) for ``method`` on the
    classifier ``model``: the :func:`select_worst_case` result plus ``record_ids`` of the selection."""
    from unlearning_engine.families.classifier.data import to_tensors

    x, y = to_tensors(list(pool))
    dev = next(model.parameters()).device
    x, y = x.to(dev), y.to(dev)

    def per_example_loss(mdl):
        return F.cross_entropy(mdl(x)[0].float(), y, reduction="none").cpu()

    lower = classifier_lower_objective(method, x, y, model.cfg.n_classes, l1_gamma=config.l1_gamma, seed=config.seed)
    out = select_worst_case(model, m, per_example_loss=per_example_loss, lower_objective=lower, config=config)
    out["record_ids"] = [pool[i].record_id for i in out["indices"]]
    out["method"] = method
    return out
