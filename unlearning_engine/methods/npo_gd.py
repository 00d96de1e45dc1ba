"""``npo_gd``: Negative Preference Optimization + gradient-descent retain term (DESIGN §5).

NPO: Zhang, Lin, Bai, Mei, "Negative Preference Optimization", arXiv 2404.05868, §3 eq. (3):

    L_NPO(θ) = −(2/β) · E_{(x,y)∈D_f} [ log σ( −β · (log π_θ(y|x) − log π_ref(y|x)) ) ]

with log π(y|x) the *sequence-summed* log-likelihood of the supervised (answer) tokens, β = 0.1,
ref = frozen copy of the serving model θ_o. At step 0 (θ = ref) the log-ratio is 0, so
L_NPO = −(2/β)·log σ(0) = (2/β)·ln 2. The GD variant (§5.1 of the paper, "NPO+RT") adds
λ · NLL(D_r) (mean NLL per supervised retain token), λ = ``retain_weight`` = 1:

    L = L_NPO(D_f batch) + λ · NLL(D_r batch)
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F

from ..modeling import DEMO_RECIPE, load_artifact, save_artifact
from ..training import (
    ProgressReporter,
    batch_nll,
    collate,
    encode_examples,
    make_optimizer_and_schedule,
    seed_everything,
    sequence_log_likelihood,
)
from .base import Method, UnlearningRequest, UnlearningResult


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


class NPOGD(Method):
    name = "npo_gd"
    description = "NPO on the forget set + λ·NLL on the retain set, ref = frozen serving model"
    defaults = dict(DEMO_RECIPE["npo_gd"])
    nonneg_params = frozenset({"retain_weight"})
    needs_model_dir = True

    def _run(self, req: UnlearningRequest, hp: dict) -> UnlearningResult:
        t0 = time.perf_counter()
        g = seed_everything(req.seed)
        model, tok = load_artifact(req.model_dir)
        ref = copy.deepcopy(model).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        f_enc = encode_examples(tok, req.forget)
        r_enc = encode_examples(tok, req.retain)
        bs, beta, lam = hp["batch_size"], hp["beta"], hp["retain_weight"]
        steps_per_epoch = math.ceil(len(f_enc) / bs)
        total = hp["epochs"] * steps_per_epoch
        opt, sched = make_optimizer_and_schedule(model.parameters(), lr=hp["lr"], total_steps=total)
        rep = ProgressReporter(total, "npo_gd", req.progress)
        model.train()
        step, tokens = 0, 0
        first_npo = None
        last = {}
        for _ in range(hp["epochs"]):
            perm = torch.randperm(len(f_enc), generator=g).tolist()
            for i in range(0, len(perm), bs):
                fb = collate([f_enc[j] for j in perm[i:i + bs]], tok.pad_token_id)
                ridx = torch.randint(len(r_enc), (bs,), generator=g).tolist()
                rb = collate([r_enc[j] for j in ridx], tok.pad_token_id)
                pol, n_f = sequence_log_likelihood(model, fb)
                with torch.no_grad():
                    refl, _ = sequence_log_likelihood(ref, fb)
                l_npo = npo_loss(pol, refl, beta)
                l_ret, n_r = batch_nll(model, rb)
                loss = l_npo + lam * l_ret
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                n_tok = int(n_f.sum().item()) + n_r
                tokens += n_tok
                if first_npo is None:
                    first_npo = l_npo.item()
                last = {"npo_loss": l_npo.item(), "retain_nll": l_ret.item(),
                        "forget_logratio_mean": (pol - refl).mean().item()}
                rep(step, loss.item(), n_tok)
        model.eval()
        sha = save_artifact(model, tok, req.output_dir)
        return UnlearningResult(method=self.name, output_dir=str(req.output_dir), weights_sha256=sha,
                                hyperparameters=hp, steps=step, tokens=tokens,
                                wall_seconds=time.perf_counter() - t0, changes_weights=True,
                                details={"start": "serving_model", "reference": "frozen serving model",
                                         "n_forget": len(req.forget), "n_retain": len(req.retain),
                                         "initial_npo_loss": first_npo, **{f"final_{k}": v for k, v in last.items()}})
