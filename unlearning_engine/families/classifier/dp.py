"""Subject-level DP-SGD of a classifier's DP base BM (DP2 step 1, DESIGN §6; issue 19 item 3).

The same mechanism, accountant and ledger as the LM DP base (:func:`unlearning_engine.dp.train_dp_base`):
Poisson sampling of privacy units (a data subject; a record without a subject is its own unit)
with rate q, the mean per-example gradient of at most ``max_records_per_unit`` of a unit's records,
clipped to C, Gaussian noise N(0, σ²C²) on the sum, divided by q·N (:mod:`unlearning_engine.dp_user`;
Abadi et al. 2016 Alg. 1; Chua et al., arXiv 2406.14322 §3), σ calibrated to (ε, δ) over the
planned steps (:mod:`unlearning_engine.dp_accounting`) and ε recomputed from the real steps. The
per-example loss is the cross-entropy (:func:`.train.per_example_ce`), per-sample gradients from
opacus' ``GradSampleModule``. The input transform is fixed (no data statistic leaves the mechanism).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ...dp import (
    HPARAM_LIMITATION,
    MIN_DP_UNITS,
    PrivacyLedger,
    _resolve_rate,
    _validate,
    resolve_delta,
)
from ...dp_user import (
    add_noise_and_normalise,
    os_entropy_generator,
    sample_step,
    unit_step_gradient,
)
from ...training import ProgressReporter, make_optimizer_and_schedule, seed_everything
from .data import collate_rows, rows_of
from .model import load_classifier, save_classifier
from .train import per_example_ce


def train_dp_classifier(base_dir, examples, out_dir, *, target_epsilon: float, epochs: int, lr: float,
                        delta: float | None = None, max_grad_norm: float = 1.0, batch_size: int | None = None,
                        sample_rate: float | None = None, seed: int = 0, progress=None, accountant: str = "auto",
                        privacy_unit: str = "subject", max_records_per_unit: int = 10,
                        min_units: int = MIN_DP_UNITS, max_physical_batch_size: int = 256,
                        device: str | None = None, **_ignored) -> PrivacyLedger:
    """Train the classifier at ``base_dir`` on ``examples`` (LabeledExamples) with unit-level
    DP-SGD and save it to ``out_dir``; returns the completed :class:`PrivacyLedger`.

    Raises:
        UnlearningInputError: fewer than ``min_units`` units, δ ≥ 1/N, ε ≤ 0, bad rate, unknown unit.
        PrivacyBudgetError: the recomputed ε exceeds the target (nothing saved).
    """
    from opacus import GradSampleModule

    from ...dp_accounting import account, calibrate
    from ...dp_train import _unwrap

    units = _validate(examples, target_epsilon=target_epsilon, epochs=epochs, lr=lr, max_grad_norm=max_grad_norm,
                      mixed_precision=None, privacy_unit=privacy_unit, max_records_per_unit=max_records_per_unit,
                      unit_gradient="aggregate", min_units=min_units)
    n_units = len(units)
    delta = resolve_delta(n_units, delta, f"{privacy_unit}s")
    q, steps_per_epoch = _resolve_rate(n_units, batch_size, sample_rate)
    total = epochs * steps_per_epoch
    acc = calibrate(target_epsilon, delta, q, total, accountant)
    m = int(max_records_per_unit) if privacy_unit == "subject" else 1
    seed_everything(seed)
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_classifier(base_dir, device=dev)
    model.train()
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    params = [p for p in gsm.parameters() if p.requires_grad]
    opt, sched = make_optimizer_and_schedule(params, lr=lr, total_steps=total)
    sample_gen, source = os_entropy_generator("cpu")
    noise_gen, _ = os_entropy_generator(dev)
    items = rows_of(examples)
    rep = ProgressReporter(total, "dp_train", progress)
    t0, seen = time.perf_counter(), 0
    for step in range(1, total + 1):
        sampled = sample_step(units, q, m, sample_gen)
        sums, loss, n, _ = unit_step_gradient(gsm, params, items, sampled, pad_id=0, unit_gradient="aggregate",
                                              max_physical_batch_size=max_physical_batch_size,
                                              max_grad_norm=max_grad_norm, device=dev, collate_fn=collate_rows,
                                              per_example_loss=per_example_ce)
        add_noise_and_normalise(params, sums, sigma=acc.noise_multiplier, max_grad_norm=max_grad_norm,
                                expected_units=q * n_units, gen=noise_gen)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        seen += n
        rep(step, loss if loss == loss else 0.0, n)
    del sample_gen, noise_gen
    final = account(acc.noise_multiplier, q, total, delta, target_epsilon, acc.accountant)
    plain = _unwrap(gsm).eval()
    sha = save_classifier(plain.cpu(), Path(out_dir))
    return PrivacyLedger(
        target_epsilon=float(target_epsilon), epsilon=final.epsilon, delta=delta, noise_multiplier=acc.noise_multiplier,
        sample_rate=q, steps=total, epochs=epochs, accountant=acc.accountant, max_grad_norm=float(max_grad_norm),
        n_records=len(examples), weights_sha256=sha, wall_seconds=time.perf_counter() - t0, tokens=seen,
        privacy_unit=privacy_unit, n_units=n_units, max_records_per_unit=m, expected_units_per_step=q * n_units,
        records_without_subject=(sum(1 for e in examples if e.subject is None) if privacy_unit == "subject"
                                 else len(examples)),
        units_subsampled=sum(1 for u in units if len(u) > m), largest_unit_records=max(len(u) for u in units),
        epsilons=final.epsilons, rdp_alphas=acc.rdp_alphas, rdp_optimal_order=final.rdp_optimal_order,
        noise_source=source, tokenizer_provenance={"kind": "not_applicable", "name": "classifier (no tokenizer)",
                                                   "sha256": ""},
        limitations=[HPARAM_LIMITATION])
