"""``dp2``: DP2Unlearning (Jahan et al., arXiv 2504.13774; DESIGN §6 step 3).

Unlearned model = DP base BM (``dp_base_dir``, (ε, δ)-DP per record) fine-tuned without DP on D_r
only, with fewer epochs than a full retrain. D_f is never read except for validation
(disjointness). The result is a post-processing of BM and D_r, so for a subject with k forgotten
records it is (kε, k·e^{(k−1)ε}·δ)-indistinguishable from the same procedure run without them
(see :func:`unlearning_engine.dp.group_privacy`); the caller attaches the DP base's ledger.
"""
from __future__ import annotations

import time

from ..modeling import DEMO_RECIPE, load_artifact, save_artifact
from ..training import train_causal_lm
from .base import Method, UnlearningRequest, UnlearningResult


class DP2(Method):
    name = "dp2"
    description = "DP2Unlearning: fine-tune the DP base on the retain set (fewer epochs)"
    defaults = dict(DEMO_RECIPE["dp2"])
    needs_dp_base_dir = True

    def _run(self, req: UnlearningRequest, hp: dict) -> UnlearningResult:
        t0 = time.perf_counter()
        model, tok = load_artifact(req.dp_base_dir)
        st = train_causal_lm(model, tok, req.retain, epochs=hp["epochs"], lr=hp["lr"],
                             batch_size=hp["batch_size"], seed=req.seed, progress=req.progress,
                             phase="dp2")
        sha = save_artifact(model, tok, req.output_dir)
        return UnlearningResult(method=self.name, output_dir=str(req.output_dir), weights_sha256=sha,
                                hyperparameters=hp, steps=st.steps, tokens=st.tokens,
                                wall_seconds=time.perf_counter() - t0, changes_weights=True,
                                details={"start": "dp_base", "n_retain": len(req.retain),
                                         "final_loss": st.final_loss,
                                         "reads_forget_set": False})
