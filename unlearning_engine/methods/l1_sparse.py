"""``l1_sparse``: ℓ1-sparse unlearning, optionally "prune first, then unlearn" (DESIGN §5).

Source: Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023,
arXiv 2304.04934, §4 (one-shot magnitude pruning before unlearning; ℓ1-sparse MU with a linearly
decaying sparsity weight):

    minimise  NLL(D_r batch) + γ_e · ‖θ‖₁ / N        (N = number of trainable parameters)

starting from θ_o (epochs over D_r). Per-epoch schedule (0-based epoch e, E epochs,
T = ``zero_tail_epochs``): γ_e = γ·(1 − e/(E − T)) for e < E − T, else 0 — a linear decay that
reaches 0 before the last T epochs (:func:`gamma_schedule`). With LoRA the ℓ1 term is over the
adapter weights (the trainable ones).

``prune_ratio`` p > 0: before unlearning, the p fraction of smallest-magnitude weights of the
decoder's linear layers (global threshold over all of them) is set to 0; that mask is fixed and
re-applied after every optimizer step, so the saved model has that sparsity. Not with LoRA
(merging an adapter would refill the pruned weights; rejected before training).
"""
from __future__ import annotations

import torch

from ..errors import UnlearningInputError
from ..hparams import v_fraction, v_nonneg_int
from ..presets import PRESET_HP
from .common import COMMON_VALIDATORS, TrainedMethod, nll_term, with_common


def gamma_schedule(gamma: float, epochs: int, zero_tail_epochs: int) -> list[float]:
    """γ_e for e = 0…E−1 (see module docstring); all 0 when E − T ≤ 0."""
    active = epochs - zero_tail_epochs
    return [gamma * (1.0 - e / active) if e < active else 0.0 for e in range(epochs)]


def prunable_weights(model) -> list[tuple[str, torch.nn.Parameter]]:
    """2-D weights of the linear layers inside the decoder blocks (not embeddings / lm_head)."""
    return [(n, p) for n, p in model.named_parameters()
            if p.ndim == 2 and ".layers." in n and "embed" not in n]


@torch.no_grad()
def magnitude_masks(model, ratio: float, named=None) -> dict[str, torch.Tensor]:
    """Boolean keep-masks from one global magnitude threshold over ``named`` ((name, parameter)
    pairs; default :func:`prunable_weights`): exactly ⌊ratio·n⌋ smallest-magnitude weights pruned,
    ties broken by position."""
    named = prunable_weights(model) if named is None else list(named)
    flat = torch.cat([p.detach().abs().flatten() for _, p in named])
    k = int(ratio * flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        keep[torch.topk(flat, k, largest=False).indices] = False
    out, i = {}, 0
    for n, p in named:
        out[n] = keep[i:i + p.numel()].view_as(p)
        i += p.numel()
    return out


class L1Sparse(TrainedMethod):
    name = "l1_sparse"
    description = "fine-tune on the retain set with a decaying ℓ1 penalty (optionally pruned first)"
    defaults = with_common(PRESET_HP["tiny"]["l1_sparse"])
    int_params = frozenset({"epochs", "batch_size"})
    nonneg_params = frozenset({"gamma"})
    validators = {**COMMON_VALIDATORS, "zero_tail_epochs": v_nonneg_int, "prune_ratio": v_fraction}
    drive = "retain"

    def resolve_hyperparameters(self, overrides):
        hp = super().resolve_hyperparameters(overrides)
        if hp["lora"] and hp["prune_ratio"] > 0:
            raise UnlearningInputError("l1_sparse: prune_ratio > 0 cannot be combined with lora")
        if hp["zero_tail_epochs"] >= hp["epochs"] and hp["gamma"] > 0:
            raise UnlearningInputError("l1_sparse: zero_tail_epochs must be < epochs")
        return hp

    def objective(self, ctx, model, rb, _fb, state):
        loss, n = nll_term(model, rb)
        g = state.values.get("gamma", 0.0)
        if g > 0:
            l1 = sum(p.abs().sum() for p in self._params) / self._n_params
            total = loss + g * l1
            return total, n, {"retain_nll": loss.item(), "l1_mean": l1.item(), "gamma": g}
        return loss, n, {"retain_nll": loss.item(), "gamma": 0.0}

    def loop_hooks(self, ctx, model):
        hp = ctx.hp
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._n_params = sum(p.numel() for p in self._params)
        sched = gamma_schedule(hp["gamma"], hp["epochs"], hp["zero_tail_epochs"])
        self._schedule = sched
        masks = {}
        if hp["prune_ratio"] > 0:
            masks = magnitude_masks(model, hp["prune_ratio"])
            named = dict(model.named_parameters())
            with torch.no_grad():
                for n, m in masks.items():
                    named[n].mul_(m)
            self._masked = [(named[n], m) for n, m in masks.items()]
        else:
            self._masked = []

        def on_epoch_start(state):
            state.values["gamma"] = sched[state.epoch]

        def after_step(_state):
            with torch.no_grad():
                for p, m in self._masked:
                    p.mul_(m)

        return {"on_epoch_start": on_epoch_start, "after_step": after_step}

    def extra_details(self, ctx):
        d = {"gamma_schedule": self._schedule}
        if self._masked:
            tot = sum(m.numel() for _, m in self._masked)
            zeros = sum(int((p == 0).sum()) for p, _ in self._masked)
            d["pruned_fraction"] = zeros / tot
        return d
