"""Worst-case forget-set selection (Fan et al., "Challenging Forgets: Unveiling the Worst-Case
Forget Sets in Machine Unlearning", arXiv 2403.07362, §4: bi-level data selection with
sign-based lower-level unlearning and projected upper-level updates of selection weights).

Selection weights w ∈ S_m = {0 ≤ w ≤ 1, Σw = m} over the candidate units (records, or subject
groups). Each outer step:

1. lower level: from θ_o, ``inner_steps`` sign-SGD unlearning steps
   θ ← θ − η_in·sign(∇_θ Σ_i w_i·L_u(x_i; θ) / Σ_i w_i) with the unlearning loss L_u of ``method``
   (``"ga"``: −NLL per example; ``"npo"``: the per-example NPO term, ref = θ_o);
2. upper level: the forget loss ℓ_i = NLL(x_i; θ_u) of each unit after unlearning (a unit's value
   is the mean over its records) is the selection gradient — the worst case minimises Σ w_i·ℓ_i
   (the records the unlearned model still fits best are the hardest to forget);
   w ← Proj_{S_m}(w − η_out·ℓ/max|ℓ|) (the gradient is scaled to max-norm 1);
3. Proj_{S_m} is the Euclidean projection onto the capped simplex, w = clip(v − μ, 0, 1) with μ
   found by bisection (:func:`project_capped_simplex`).

At the end the m units with the largest weights are selected (ties broken by lower ℓ, then index).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .data import Example
from .loop import model_device, to_device
from .training import collate, encode_examples, sequence_log_likelihood


def project_capped_simplex(v: torch.Tensor, m: float, iters: int = 200) -> torch.Tensor:
    """Euclidean projection of ``v`` onto {0 ≤ w ≤ 1, Σw = m}: w = clip(v − μ, 0, 1), μ by
    bisection on the non-increasing s(μ) = Σ clip(v − μ, 0, 1) (float64).

    Raises:
        ValueError: m outside [0, len(v)].
    """
    v = v.detach().to(torch.float64).flatten()
    n = v.numel()
    if not 0 <= m <= n:
        raise ValueError(f"m={m} must be in [0, {n}]")
    lo, hi = float(v.min()) - 1.0, float(v.max())  # s(lo) = n ≥ m ≥ 0 = s(hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        if float((v - mid).clamp(0, 1).sum()) > m:
            lo = mid
        else:
            hi = mid
    return (v - (lo + hi) / 2).clamp(0, 1)


@dataclass
class SelectionResult:
    """``selected``: candidate indices of the chosen set (all records of the chosen units);
    ``units``: unit keys (record indices or group labels) chosen; ``weights``: final w per unit
    (in ``unit_keys`` order); ``losses``: last ℓ per unit; ``history``: mean ℓ of the current
    top-m units after each outer step."""

    selected: list[int]
    units: list
    unit_keys: list
    weights: list[float]
    losses: list[float]
    history: list[float] = field(default_factory=list)


def _per_example_loglik(model, enc, pad_id, batch_size):
    dev = model_device(model)
    lls, ns = [], []
    for i in range(0, len(enc), batch_size):
        ll, n = sequence_log_likelihood(model, to_device(collate(enc[i:i + batch_size], pad_id), dev))
        lls.append(ll)
        ns.append(n)
    return torch.cat(lls), torch.cat(ns)


def select_worst_case(model, tokenizer, candidates: Sequence[Example], m: int, *, method: str = "ga",
                      steps: int = 5, inner_steps: int = 3, inner_lr: float = 1e-3,
                      outer_lr: float = 0.5, groups: Sequence | None = None, beta: float = 0.1,
                      batch_size: int = 16, seed: int = 0) -> SelectionResult:
    """Select the ``m`` worst-case units among ``candidates`` (see module docstring).

    Args:
        model: θ_o (not modified; copies are unlearned).
        groups: optional unit label per candidate (e.g. the data subject); then ``m`` counts
            groups and a group's loss is the mean over its records. Default: one unit per record.
        method: ``"ga"`` or ``"npo"`` (lower-level unlearning loss).
    Raises:
        ValueError: bad ``m``, ``method``, or ``groups`` length.
    """
    if method not in ("ga", "npo"):
        raise ValueError("method must be 'ga' or 'npo'")
    n = len(candidates)
    keys = list(range(n)) if groups is None else list(groups)
    if len(keys) != n:
        raise ValueError("groups must have one label per candidate")
    unit_keys = list(dict.fromkeys(keys))
    U = len(unit_keys)
    if not 1 <= m <= U:
        raise ValueError(f"m={m} must be in [1, {U}] (number of units)")
    unit_of = torch.tensor([unit_keys.index(k) for k in keys])
    sizes = torch.bincount(unit_of, minlength=U).to(torch.float64)
    enc = encode_examples(tokenizer, candidates)
    pad = tokenizer.pad_token_id
    torch.manual_seed(seed)
    base = copy.deepcopy(model).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        ref_ll, _ = _per_example_loglik(base, enc, pad, batch_size)
    w = torch.full((U,), m / U, dtype=torch.float64)
    history: list[float] = []
    unit_loss = torch.zeros(U, dtype=torch.float64)
    for _ in range(steps):
        theta = copy.deepcopy(base)
        params = list(theta.parameters())
        for p in params:
            p.requires_grad_(True)
        theta.train()
        ex_w = (w[unit_of] / sizes[unit_of]).to(torch.float32).to(model_device(theta))
        for _ in range(inner_steps):
            ll, ntok = _per_example_loglik(theta, enc, pad, batch_size)
            if method == "ga":
                per = ll / ntok.clamp(min=1)  # −(−NLL): minimising it is gradient ascent on NLL
            else:
                per = -(2.0 / beta) * F.logsigmoid(-beta * (ll - ref_ll))
            loss = (ex_w * per).sum() / ex_w.sum().clamp(min=1e-12)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            with torch.no_grad():
                for p, gr in zip(params, grads, strict=True):
                    if gr is not None:
                        p.sub_(inner_lr * gr.sign())
        theta.eval()
        with torch.no_grad():
            ll, ntok = _per_example_loglik(theta, enc, pad, batch_size)
        nll = (-ll / ntok.clamp(min=1)).to(torch.float64).cpu()
        unit_loss = torch.zeros(U, dtype=torch.float64).index_add_(0, unit_of, nll) / sizes
        g = unit_loss / unit_loss.abs().max().clamp(min=1e-12)
        w = project_capped_simplex(w - outer_lr * g, m)
        top = _top_m(w, unit_loss, m)
        history.append(float(unit_loss[top].mean()))
        del theta
    top = _top_m(w, unit_loss, m)
    chosen = {unit_keys[i] for i in top}
    return SelectionResult(selected=[i for i, k in enumerate(keys) if k in chosen],
                           units=[unit_keys[i] for i in top], unit_keys=unit_keys,
                           weights=[float(x) for x in w], losses=[float(x) for x in unit_loss],
                           history=history)


def _top_m(w: torch.Tensor, loss: torch.Tensor, m: int) -> list[int]:
    order = sorted(range(len(w)), key=lambda i: (-float(w[i]), float(loss[i]), i))
    return sorted(order[:m])
