"""``dp2`` for classifiers (DP2Unlearning, arXiv 2504.13774; DESIGN §6, §11).

Step 3 of DESIGN §6: the unlearned model = the DP base BM (trained once per model with
subject-level DP-SGD on D, :func:`unlearning_engine.families.classifier.dp.train_dp_classifier`)
fine-tuned, without DP, on D_r only (mean CE), with fewer epochs than a full retrain. D_f is never
read. The guarantee (BM (ε, δ)-DP per data subject, the result a post-processing of BM and D_r) is
stated by the certificate from the model's privacy ledger.
"""
from __future__ import annotations

from .base import RetainFineTune


class ClassifierDP2(RetainFineTune):
    name = "dp2"
    description = "fine-tune the subject-level DP base on the retain set (D_f never read)"
    defaults = {"epochs": 8, "lr": 3e-3, "batch_size": 32, "weight_decay": 0.0}
    family_defaults = {"tabular_classifier": {"epochs": 10}}
    start_from = "dp_base_dir"
    needs_dp_base_dir = True
    needs_model_dir = False

    def train(self, ctx, model, forget, retain):
        model = super().train(ctx, model, forget, retain)
        ctx.details["d_f_read"] = False
        return model
