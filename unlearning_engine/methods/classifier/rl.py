"""``rl`` (random labels): relabel every forget record with a class drawn uniformly from the
*other* classes, then fine-tune θ_o with CE on D_f (relabelled) ∪ D_r (Golatkar et al. 2020;
the RL baseline of Jia et al., NeurIPS 2023, arXiv 2304.04934, §5, Unlearn-Sparse ``unlearn/RL.py``).

Relabelling (seeded, ``torch.Generator`` with the request seed): y' = (y + 1 + u) mod C with
u ~ Uniform{0, …, C−2}, so y' ≠ y.
"""
from __future__ import annotations

import torch

from ...families.classifier.data import LabeledExample
from .base import ClassifierMethod


def random_other_labels(y: torch.Tensor, n_classes: int, gen: torch.Generator) -> torch.Tensor:
    """(N,) labels each ≠ the corresponding ``y`` (module docstring formula)."""
    u = torch.randint(0, n_classes - 1, y.shape, generator=gen)
    return (y + 1 + u) % n_classes


class ClassifierRL(ClassifierMethod):
    name = "rl"
    description = "fine-tune on the forget set with random wrong labels plus the retain set"
    defaults = {"epochs": 3, "lr": 1e-3, "batch_size": 32, "weight_decay": 0.0}

    def train(self, ctx, model, forget, retain):
        hp = ctx.hp
        gen = torch.Generator().manual_seed(ctx.req.seed)
        y = torch.tensor([e.label for e in forget])
        y2 = random_other_labels(y, model.cfg.n_classes, gen).tolist()
        relabelled = [LabeledExample(e.features, int(new), e.record_id, e.subject)
                      for e, new in zip(forget, y2, strict=True)]
        ctx.loop(model, relabelled + retain, phase="rl", epochs=hp["epochs"], lr=hp["lr"],
                 batch_size=hp["batch_size"], weight_decay=hp["weight_decay"])
        return model
