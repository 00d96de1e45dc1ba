"""``task_vector``: forgetting by task-vector negation (DESIGN §5).

Source: Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023, arXiv 2212.04089,
§3 ("Forgetting via negation"): fine-tune θ_o on D_f (minimise NLL(D_f)) → θ_ft; the task vector
τ = θ_ft − θ_o is negated and added with scale α:

    θ_u = θ_o − α·(θ_ft − θ_o)        (α = ``alpha`` = 1)

for every parameter (buffers are copied from θ_o). With LoRA, θ_ft is the merged fine-tuned
model and the saved adapter (``adapter/``) is the fine-tune adapter (its merged delta is τ).
With ``save_finetuned=true`` θ_ft is also saved to ``output_dir/finetuned`` (audit, tests).
"""
from __future__ import annotations

import torch

from ..hparams import v_bool
from ..lora import is_peft
from ..modeling import save_artifact
from ..presets import PRESET_HP
from .common import COMMON_VALIDATORS, TrainedMethod, nll_term, with_common


@torch.no_grad()
def negate_task_vector(theta_o: dict[str, torch.Tensor], theta_ft: dict[str, torch.Tensor],
                       alpha: float) -> dict[str, torch.Tensor]:
    """{name: θ_o − α·(θ_ft − θ_o)} for every floating tensor of ``theta_o`` (others copied).

    Raises:
        KeyError: a parameter of θ_o is missing from θ_ft.
    """
    out = {}
    for k, o in theta_o.items():
        if not torch.is_floating_point(o):
            out[k] = o.clone()
            continue
        out[k] = o - alpha * (theta_ft[k] - o)
    return out


class TaskVector(TrainedMethod):
    name = "task_vector"
    description = "fine-tune on the forget set, then subtract α times the task vector"
    defaults = {**with_common(PRESET_HP["tiny"]["task_vector"], stop=False), "save_finetuned": False}
    validators = {**COMMON_VALIDATORS, "save_finetuned": v_bool}
    needs_retain = False

    def objective(self, ctx, model, fb, _rb, _state):
        loss, n = nll_term(model, fb)
        return loss, n, {"forget_nll": loss.item()}

    def train(self, ctx, model, f_enc, r_enc):
        hp = ctx.hp
        theta_o = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model = ctx.maybe_lora(model)
        ctx.loop(model, f_enc, None, lambda m, db, ob, st: self.objective(ctx, m, db, ob, st),
                 phase=self.name, epochs=hp["epochs"], lr=hp["lr"], batch_size=hp["batch_size"],
                 pair=False)
        ft = ctx.finish(model) if is_peft(model) else model
        if hp["save_finetuned"]:
            save_artifact(ft, ctx.tok, ctx.out / "finetuned")
        theta_ft = ft.state_dict()
        ft.load_state_dict(negate_task_vector(theta_o, theta_ft, hp["alpha"]), strict=True)
        return ft

    def extra_details(self, ctx):
        st = ctx.stats[self.name]
        return {"finetune_final_forget_nll": st.final_loss,
                "formula": "theta_u = theta_o - alpha * (theta_ft - theta_o)"}
