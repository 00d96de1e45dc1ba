"""``retrain``: exact unlearning, the gold standard (DESIGN §5).

Re-runs the training recipe from the pre-trained base (``base_dir``) on D_r only. D_f is read
only for validation (disjointness). Cost ≈ a full fine-tune on |D_r| records.
"""
from __future__ import annotations

import time

from ..modeling import DEMO_RECIPE, load_artifact, save_artifact
from ..training import train_causal_lm
from .base import Method, UnlearningRequest, UnlearningResult


class Retrain(Method):
    name = "retrain"
    description = "exact: fine-tune the pre-trained base on the retain set only"
    defaults = dict(DEMO_RECIPE["retrain"])
    needs_base_dir = True

    def _run(self, req: UnlearningRequest, hp: dict) -> UnlearningResult:
        t0 = time.perf_counter()
        model, tok = load_artifact(req.base_dir)
        st = train_causal_lm(model, tok, req.retain, epochs=hp["epochs"], lr=hp["lr"],
                             batch_size=hp["batch_size"], seed=req.seed, progress=req.progress,
                             phase="retrain")
        sha = save_artifact(model, tok, req.output_dir)
        return UnlearningResult(method=self.name, output_dir=str(req.output_dir), weights_sha256=sha,
                                hyperparameters=hp, steps=st.steps, tokens=st.tokens,
                                wall_seconds=time.perf_counter() - t0, changes_weights=True,
                                details={"start": "base", "n_retain": len(req.retain),
                                         "final_loss": st.final_loss})
