"""``ga`` (gradient ascent) for classifiers: minimise −CE(D_f), i.e. ascend the forget-set
cross-entropy from θ_o (Thudi et al. 2022; the GA baseline of Jia et al., NeurIPS 2023, arXiv
2304.04934, §5, Unlearn-Sparse ``unlearn/GA.py``). Loss per batch: −(1/B) Σ_i CE(logits_i, y_i).
"""
from __future__ import annotations

import torch.nn.functional as F

from .base import ClassifierMethod


def ga_loss(logits, y):
    """−mean CE (nats) of a forget batch: logits (B, C) fp32, y (B,) int64 → scalar."""
    return -F.cross_entropy(logits.float(), y)


class ClassifierGA(ClassifierMethod):
    name = "ga"
    description = "gradient ascent on the forget set's cross-entropy"
    defaults = {"epochs": 5, "lr": 2e-4, "batch_size": 16, "weight_decay": 0.0}
    needs_retain = False

    def train(self, ctx, model, forget, retain):
        hp = ctx.hp

        def objective(m, fb, _ob, _state):
            logits, _ = m(fb["x"])
            return ga_loss(logits, fb["y"]), int(fb["y"].numel()), {}

        ctx.loop(model, forget, phase="ga", epochs=hp["epochs"], lr=hp["lr"], batch_size=hp["batch_size"],
                 objective=objective, weight_decay=hp["weight_decay"])
        return model
