"""``retrain``: exact unlearning, the gold standard (DESIGN §5).

Re-runs the training recipe from the pre-trained base (``base_dir``) on D_r only:
minimise NLL(D_r). D_f is read only for validation (disjointness). Cost ≈ a full fine-tune on
|D_r| records.
"""
from __future__ import annotations

from ..modeling import DEMO_RECIPE
from .common import TrainedMethod, nll_term, with_common


class Retrain(TrainedMethod):
    name = "retrain"
    description = "exact: fine-tune the pre-trained base on the retain set only"
    defaults = with_common(DEMO_RECIPE["retrain"], stop=False)
    start_from = "base_dir"
    needs_base_dir = True
    needs_model_dir = False
    drive = "retain"
    uses_forget = False

    def objective(self, ctx, model, rb, _ob, _state):
        loss, n = nll_term(model, rb)
        return loss, n, {}

    def extra_details(self, ctx):
        return {"start": "base"}
