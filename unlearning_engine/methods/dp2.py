"""``dp2``: DP2Unlearning (Jahan et al., arXiv 2504.13774; DESIGN §6 step 3).

Unlearned model = DP base BM (``dp_base_dir``, (ε, δ)-DP per record) fine-tuned without DP on D_r
only (minimise NLL(D_r)), with fewer epochs than a full retrain. The budget is ``epochs`` over D_r,
or, when ``steps`` is set, a fixed number of optimizer steps (issue 15 item 3: over a sequence of
requests D_r shrinks, and an epoch budget then means ever fewer steps and falling utility). D_f is never read except for
validation (disjointness; no forget-NLL early stop either). The result is a post-processing of BM
and D_r, so for a subject with k forgotten records it is (kε, k·e^{(k−1)ε}·δ)-indistinguishable
from the same procedure run without them (see :func:`unlearning_engine.dp.group_privacy`); the
caller attaches the DP base's ledger.
"""
from __future__ import annotations

from ..hparams import v_optional_positive
from ..modeling import DEMO_RECIPE
from .common import COMMON_VALIDATORS, with_common
from .retrain import Retrain


def v_optional_steps(name, value):
    """``None`` (budget in epochs) or a whole number of optimizer steps ≥ 1."""
    value = v_optional_positive(name, value)
    if value is not None and int(value) != value:
        from ..errors import UnlearningInputError

        raise UnlearningInputError(f"hyper-parameter {name!r} must be a whole number of steps, got {value!r}")
    return None if value is None else int(value)


class DP2(Retrain):
    """Same objective as :class:`Retrain` (NLL on D_r); starts from the DP base, fewer epochs."""

    name = "dp2"
    description = "DP2Unlearning: fine-tune the DP base on the retain set (fewer epochs)"
    # budget in epochs unless a recipe sets ``steps`` (the demo model's stored recipe does: 444)
    defaults = {**with_common(DEMO_RECIPE["dp2"], stop=False), "steps": None}
    validators = {**COMMON_VALIDATORS, "steps": v_optional_steps}
    start_from = "dp_base_dir"
    needs_base_dir = False
    needs_dp_base_dir = True

    def extra_details(self, ctx):
        return {"start": "dp_base", "reads_forget_set": False}
