"""``npo``, ``npo_gd``, ``npo_kl``: Negative Preference Optimization (DESIGN §5).

NPO: Zhang, Lin, Bai, Mei, "Negative Preference Optimization", arXiv 2404.05868, §3 eq. (3):

    L_NPO(θ) = −(2/β) · E_{(x,y)∈D_f} [ log σ( −β · (log π_θ(y|x) − log π_ref(y|x)) ) ]

with log π(y|x) the *sequence-summed* log-likelihood of the supervised (answer) tokens, β = 0.1,
ref = frozen copy of the serving model θ_o (with LoRA: the base with adapters disabled). At
step 0 (θ = ref) the log-ratio is 0, so L_NPO = −(2/β)·log σ(0) = (2/β)·ln 2.

- ``npo``: L = L_NPO(D_f batch) (arXiv 2404.05868 §3).
- ``npo_gd`` (paper §5.1 "NPO+RT"): L = L_NPO + λ·NLL(D_r batch), λ = ``retain_weight`` = 1.
- ``npo_kl`` (paper §5.1 "NPO+KL", KL as in TOFU arXiv 2401.06121 §5):
  L = L_NPO + w·KL(p_ref ‖ p_θ) on D_r tokens, w = ``kl_weight`` = 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..lora import reference_of
from ..modeling import DEMO_RECIPE
from ..presets import PRESET_HP
from ..training import sequence_log_likelihood
from .common import TrainedMethod, kl_retain_term, nll_term, with_common


def npo_loss(policy_loglik: torch.Tensor, ref_loglik: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO loss (arXiv 2404.05868 eq. 3) averaged over the batch.

    Args:
        policy_loglik: (B,) sequence-summed log π_θ(y|x), nats (differentiable).
        ref_loglik: (B,) sequence-summed log π_ref(y|x), nats (no grad).
        beta: inverse temperature β > 0.
    Returns:
        scalar −(2/β)·mean(log σ(−β·(policy − ref))); equals (2/β)·ln 2 when policy == ref.
    """
    return -(2.0 / beta) * F.logsigmoid(-beta * (policy_loglik - ref_loglik)).mean()


def npo_term(ctx, model, fb, beta: float):
    """(L_NPO of a forget batch, supervised tokens, mean log-ratio)."""
    pol, n_f = sequence_log_likelihood(model, fb)
    with reference_of(model, ctx.ref) as ref:
        refl, _ = sequence_log_likelihood(ref, fb)
    return npo_loss(pol, refl, beta), int(n_f.sum().item()), (pol - refl).mean().item()


class NPO(TrainedMethod):
    name = "npo"
    description = "NPO on the forget set alone, ref = frozen serving model"
    defaults = with_common(PRESET_HP["tiny"]["npo"])
    uses_reference = True
    needs_retain = False
    uses_retain = True  # only for the collapse check

    def objective(self, ctx, model, fb, _rb, _state):
        l_npo, n, lr_ = npo_term(ctx, model, fb, ctx.hp["beta"])
        return l_npo, n, {"npo_loss": l_npo.item(), "forget_logratio_mean": lr_}

    def extra_details(self, ctx):
        st = ctx.stats[self.name]
        return {"reference": "frozen serving model" if not ctx.hp.get("lora") else
                "base with adapters disabled", "initial_npo_loss": st.first_logs.get("npo_loss")}


class NPOGD(NPO):
    name = "npo_gd"
    description = "NPO on the forget set + λ·NLL on the retain set, ref = frozen serving model"
    defaults = with_common(DEMO_RECIPE["npo_gd"])
    nonneg_params = frozenset({"retain_weight"})
    needs_retain = True
    pair = True

    def objective(self, ctx, model, fb, rb, _state):
        l_npo, n_f, lr_ = npo_term(ctx, model, fb, ctx.hp["beta"])
        l_ret, n_r = nll_term(model, rb)
        loss = l_npo + ctx.hp["retain_weight"] * l_ret
        return loss, n_f + n_r, {"npo_loss": l_npo.item(), "retain_nll": l_ret.item(),
                                 "forget_logratio_mean": lr_}


class NPOKL(NPO):
    name = "npo_kl"
    description = "NPO on the forget set + KL(p_ref‖p_θ) on the retain set"
    defaults = with_common(PRESET_HP["tiny"]["npo_kl"])
    nonneg_params = frozenset({"kl_weight"})
    needs_retain = True
    pair = True

    def objective(self, ctx, model, fb, rb, _state):
        l_npo, n_f, lr_ = npo_term(ctx, model, fb, ctx.hp["beta"])
        kl = kl_retain_term(model, rb, ctx.ref)
        loss = l_npo + ctx.hp["kl_weight"] * kl
        n_r = int((rb["labels"][:, 1:] != -100).sum().item())
        return loss, n_f + n_r, {"npo_loss": l_npo.item(), "retain_kl": kl.item(),
                                 "forget_logratio_mean": lr_}
