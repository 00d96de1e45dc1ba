"""``l1_sparse`` for classifiers with **prune first, then unlearn** (Jia et al., "Model Sparsity
Can Simplify Machine Unlearning", NeurIPS 2023, arXiv 2304.04934, §4; Unlearn-Sparse
``FT_prune`` / ``pruner/utils.py``).

1. Prune (OMP, one-shot magnitude pruning): the ⌊s·n⌋ smallest-magnitude weights over all conv
   and linear *weight* tensors of the extractor (one global threshold; biases and the head kept —
   **deviation**: Unlearn-Sparse prunes conv layers only; here most weights are in the extractor's
   linear layer) are set to 0 (:func:`unlearning_engine.methods.l1_sparse.magnitude_masks`). The
   mask is fixed and re-applied after every optimizer step.
2. Unlearn: from the pruned θ_o minimise CE(D_r batch) + γ_e · ‖θ‖₁ / N (N = parameter count, as
   DESIGN §5) with γ_e decaying linearly to 0 before the last ``zero_tail_epochs`` epochs
   (:func:`unlearning_engine.methods.l1_sparse.gamma_schedule`: γ_e = γ·(1 − e/(E − T)) for e < E − T).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import UnlearningInputError
from ...hparams import v_fraction, v_nonneg_int
from ..l1_sparse import gamma_schedule, magnitude_masks
from .base import ClassifierMethod


def prunable_classifier_weights(model) -> list[tuple[str, torch.nn.Parameter]]:
    """Conv/linear weight tensors (ndim ≥ 2) of the extractor (the head and biases are kept)."""
    return [(n, p) for n, p in model.named_parameters() if p.ndim >= 2 and n.startswith("extractor.")]


def l1_objective_value(ce: torch.Tensor, params, gamma: float) -> torch.Tensor:
    """CE + γ·Σ|θ|/N over ``params`` (scalar)."""
    n = sum(p.numel() for p in params)
    return ce + gamma * sum(p.abs().sum() for p in params) / n


class ClassifierL1Sparse(ClassifierMethod):
    name = "l1_sparse"
    description = "prune first (global magnitude, fixed mask), then fine-tune on D_r with a decaying ℓ1 penalty"
    defaults = {"epochs": 5, "lr": 2e-3, "batch_size": 32, "gamma": 5.0, "zero_tail_epochs": 1,
                "prune_ratio": 0.5, "weight_decay": 0.0}
    nonneg_params = frozenset({"gamma", "weight_decay"})
    validators = {"zero_tail_epochs": v_nonneg_int, "prune_ratio": v_fraction}

    def resolve_hyperparameters(self, overrides):
        hp = super().resolve_hyperparameters(overrides)
        if hp["zero_tail_epochs"] >= hp["epochs"] and hp["gamma"] > 0:
            raise UnlearningInputError("l1_sparse: zero_tail_epochs must be < epochs")
        return hp

    def train(self, ctx, model, forget, retain):
        hp = ctx.hp
        named = dict(model.named_parameters())
        masks = magnitude_masks(model, hp["prune_ratio"], prunable_classifier_weights(model)) if hp["prune_ratio"] else {}
        with torch.no_grad():
            for n, m in masks.items():
                named[n].mul_(m)
        masked = [(named[n], m) for n, m in masks.items()]
        params = [p for p in model.parameters() if p.requires_grad]
        sched = gamma_schedule(hp["gamma"], hp["epochs"], hp["zero_tail_epochs"])

        def objective(m, rb, _ob, state):
            logits, _ = m(rb["x"])
            ce = F.cross_entropy(logits.float(), rb["y"])
            g = state.values.get("gamma", 0.0)
            return l1_objective_value(ce, params, g), int(rb["y"].numel()), {"ce": ce.item(), "gamma": g}

        def on_epoch_start(state):
            state.values["gamma"] = sched[state.epoch]

        def after_step(_state):
            with torch.no_grad():
                for p, m in masked:
                    p.mul_(m)

        ctx.loop(model, retain, phase="l1_sparse", epochs=hp["epochs"], lr=hp["lr"], batch_size=hp["batch_size"],
                 objective=objective, weight_decay=hp["weight_decay"], on_epoch_start=on_epoch_start,
                 after_step=after_step)
        tot = sum(m.numel() for _, m in masked)
        ctx.details.update({"gamma_schedule": sched,
                            "pruned_fraction": (sum(int((p == 0).sum()) for p, _ in masked) / tot) if tot else 0.0})
        return model
