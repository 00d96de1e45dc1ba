"""The DP-SGD training run behind :func:`unlearning_engine.dp.train_dp_base` (inputs validated there).

Order of operations (DESIGN §6 pitfalls): load the fp32 base on its device, wrap with peft (LoRA),
then with opacus' ``GradSampleModule``; train; remove the hooks and per-sample attributes; merge
the adapter; save the plain model.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .dp_accounting import account
from .dp_user import (
    add_noise_and_normalise,
    check_pack_fits,
    os_entropy_generator,
    sample_step,
    unit_step_gradient,
)
from .errors import UnlearningInputError
from .modeling import DP_ATTN_IMPLEMENTATION, load_artifact, save_artifact
from .training import (
    ProgressReporter,
    encode_examples,
    make_optimizer_and_schedule,
    seed_everything,
)


def _unwrap(gsm):
    """The plain module inside a GradSampleModule, hooks removed, per-sample attributes gone."""
    plain = gsm._module
    if hasattr(gsm, "_close"):
        gsm._close()
    for p in plain.parameters():
        for attr in ("grad_sample", "_forward_counter", "summed_grad"):
            if hasattr(p, attr):
                try:
                    delattr(p, attr)
                except AttributeError:
                    setattr(p, attr, None)
        p.grad = None
    return plain


def run_dp_training(base_dir, examples, out_dir, units, ledger, *, lr: float, seed: int,
                    steps_per_epoch: int, progress, max_physical_batch_size: int,
                    secure_mode: bool, device: str | None):
    """Train, save to ``out_dir`` and return ``ledger`` completed (steps, ε recomputed, sha256).

    Raises:
        UnlearningInputError: non-fp32 base weights; a packed unit too long for the model.
        PrivacyBudgetError: the recomputed ε exceeds the target (nothing saved).
    """
    from opacus import GradSampleModule

    seed_everything(seed)
    dev = torch.device(device) if device else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = load_artifact(base_dir, device=dev, with_eco=False,
                                     attn_implementation=DP_ATTN_IMPLEMENTATION)
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise UnlearningInputError("DP training needs fp32 weights (mixed precision is rejected)")
    enc = encode_examples(tokenizer, examples)
    m = ledger.max_records_per_unit
    if ledger.unit_gradient == "pack":
        check_pack_fits(enc, units, m, getattr(model.config, "max_position_embeddings", None))
    if ledger.lora is not None:
        from .lora import wrap_lora
        model = wrap_lora(model, ledger.lora)
    model.train()
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    params = [p for p in gsm.parameters() if p.requires_grad]
    total = ledger.epochs * steps_per_epoch
    opt, sched = make_optimizer_and_schedule(params, lr=lr, total_steps=total)
    sample_gen, source = os_entropy_generator("cpu", secure_mode)
    noise_gen, _ = os_entropy_generator(dev, secure_mode)
    # rows per forward/backward: a unit is never split, so one with more records than this is a chunk of its
    # own (≤ m rows); the memory plan (requests_app.memory) counts that largest unit
    physical = max(1, int(max_physical_batch_size))
    rep = ProgressReporter(total, "dp_train", progress)
    t0 = time.perf_counter()
    tokens = 0
    for step in range(1, total + 1):
        sampled = sample_step(units, ledger.sample_rate, m, sample_gen)
        sums, loss, ntok, _ = unit_step_gradient(
            gsm, params, enc, sampled, pad_id=tokenizer.pad_token_id,
            unit_gradient=ledger.unit_gradient, max_physical_batch_size=physical,
            max_grad_norm=ledger.max_grad_norm, device=dev)
        add_noise_and_normalise(params, sums, sigma=ledger.noise_multiplier,
                                max_grad_norm=ledger.max_grad_norm,
                                expected_units=ledger.expected_units_per_step, gen=noise_gen)
        del sums  # p.grad holds the step's gradient; the next step's sums do not coexist with these
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += ntok
        rep(step, loss if loss == loss else 0.0, ntok)  # empty sample: no loss (NaN breaks JSON)
    del sample_gen, noise_gen  # never stored
    wall = time.perf_counter() - t0
    acc = account(ledger.noise_multiplier, ledger.sample_rate, total, ledger.delta,
                  ledger.target_epsilon, ledger.accountant)
    plain = _unwrap(gsm)
    if ledger.lora is not None:
        from .lora import merge
        plain = merge(plain)
    plain.eval()
    ledger.weights_sha256 = save_artifact(plain.cpu(), tokenizer, Path(out_dir))
    ledger.steps, ledger.epsilon, ledger.epsilons = total, acc.epsilon, acc.epsilons
    ledger.rdp_optimal_order = acc.rdp_optimal_order
    ledger.wall_seconds, ledger.tokens, ledger.noise_source = wall, tokens, source
    return ledger
