"""``retrain`` for classifiers: exact unlearning, the gold standard (DESIGN §5, §11).

Re-runs the family's training recipe (:data:`~unlearning_engine.families.classifier.train.DEFAULT_RECIPE`:
minimise mean CE over D_r with AdamW, linear warm-up/decay) from the model's seeded
initialisation (``base_dir``, registered with the model) on D_r only. D_f is read only to check
disjointness.
"""
from __future__ import annotations

from ...families.classifier.train import DEFAULT_RECIPE
from .base import RetainFineTune


class ClassifierRetrain(RetainFineTune):
    name = "retrain"
    description = "exact: train the recipe from the seeded initialisation on the retain set only"
    defaults = dict(DEFAULT_RECIPE["image_classifier"])
    family_defaults = {f: dict(r) for f, r in DEFAULT_RECIPE.items()}
    start_from = "base_dir"
    needs_base_dir = True
    needs_model_dir = False
