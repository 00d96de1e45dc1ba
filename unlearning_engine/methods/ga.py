"""``ga``, ``gd``, ``kl``: gradient-ascent family (DESIGN §5).

Sources: gradient ascent on the forget set, Jang et al., "Knowledge Unlearning for Mitigating
Privacy Risks in Language Models", arXiv 2210.01504, §3; the GD ("gradient difference") and KL
variants as defined by TOFU, Maini et al., arXiv 2401.06121, §5 ("Gradient Difference",
"KL Minimization"). NLL = mean per supervised token of the batch (nats).

- ``ga``: L = −NLL(D_f batch).
- ``gd``: L = −NLL(D_f batch) + λ·NLL(D_r batch), λ = ``retain_weight`` = 1.
- ``kl``: L = −NLL(D_f batch) + w·KL(p_ref ‖ p_θ) over the supervised D_r tokens, w = ``kl_weight``
  = 1, ref = frozen copy of θ_o (LoRA: the base with adapters disabled); KL = 0 at step 0.
"""
from __future__ import annotations

from ..presets import PRESET_HP
from .common import TrainedMethod, kl_retain_term, nll_term, with_common


class GA(TrainedMethod):
    name = "ga"
    description = "gradient ascent on the forget set"
    defaults = with_common(PRESET_HP["tiny"]["ga"])
    needs_retain = False

    def objective(self, ctx, model, fb, _rb, _state):
        nll_f, n = nll_term(model, fb)
        return -nll_f, n, {"forget_nll": nll_f.item()}


class GD(TrainedMethod):
    name = "gd"
    description = "gradient difference: ascent on the forget set, descent on the retain set"
    defaults = with_common(PRESET_HP["tiny"]["gd"])
    nonneg_params = frozenset({"retain_weight"})
    pair = True

    def objective(self, ctx, model, fb, rb, _state):
        nll_f, n_f = nll_term(model, fb)
        nll_r, n_r = nll_term(model, rb)
        return -nll_f + ctx.hp["retain_weight"] * nll_r, n_f + n_r, {
            "forget_nll": nll_f.item(), "retain_nll": nll_r.item()}


class KL(TrainedMethod):
    name = "kl"
    description = "ascent on the forget set + KL(p_ref‖p_θ) to the original on the retain set"
    defaults = with_common(PRESET_HP["tiny"]["kl"])
    nonneg_params = frozenset({"kl_weight"})
    pair = True
    uses_reference = True

    def objective(self, ctx, model, fb, rb, _state):
        nll_f, n_f = nll_term(model, fb)
        kl = kl_retain_term(model, rb, ctx.ref)
        n_r = int((rb["labels"][:, 1:] != -100).sum().item())
        return -nll_f + ctx.hp["kl_weight"] * kl, n_f + n_r, {
            "forget_nll": nll_f.item(), "retain_kl": kl.item()}
