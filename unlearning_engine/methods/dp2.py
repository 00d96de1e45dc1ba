"""``dp2``: DP2Unlearning (Jahan et al., arXiv 2504.13774; DESIGN §6 step 3).

Unlearned model = DP base BM (``dp_base_dir``, (ε, δ)-DP per record) fine-tuned without DP on D_r
only (minimise NLL(D_r)), with fewer epochs than a full retrain. D_f is never read except for
validation (disjointness; no forget-NLL early stop either). The result is a post-processing of BM
and D_r, so for a subject with k forgotten records it is (kε, k·e^{(k−1)ε}·δ)-indistinguishable
from the same procedure run without them (see :func:`unlearning_engine.dp.group_privacy`); the
caller attaches the DP base's ledger.
"""
from __future__ import annotations

from ..modeling import DEMO_RECIPE
from .common import with_common
from .retrain import Retrain


class DP2(Retrain):
    """Same objective as :class:`Retrain` (NLL on D_r); starts from the DP base, fewer epochs."""

    name = "dp2"
    description = "DP2Unlearning: fine-tune the DP base on the retain set (fewer epochs)"
    defaults = with_common(DEMO_RECIPE["dp2"], stop=False)
    start_from = "dp_base_dir"
    needs_base_dir = False
    needs_dp_base_dir = True

    def extra_details(self, ctx):
        return {"start": "dp_base", "reads_forget_set": False}
