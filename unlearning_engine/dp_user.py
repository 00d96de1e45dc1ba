"""Unit-level DP-SGD: the privacy unit is a data subject (or a record), DESIGN §6 / issue 12.

Mechanism (user-level sampling, ULS, of Chua et al., "Mind the Privacy Unit! User-Level
Differential Privacy for Language Model Fine-Tuning", arXiv 2406.14322, §3; DP-SGD of Abadi et
al. 2016, arXiv 1607.00133, Alg. 1, with the unit in place of the example). Per step t:

1. Poisson-sample units: each of the N units independently with probability q.
2. For each sampled unit u, take at most ``m = max_records_per_unit`` of its records (a uniformly
   random subset when it has more) and form the unit gradient
   g_u = (1/|S_u|) Σ_{i∈S_u} ∇ℓ_i  (**mean**, ℓ_i = mean NLL per supervised token of record i).
   Mean rather than sum: the unit gradient has the scale of one record's gradient whatever the
   unit's size, so C and the learning rate mean the same as in record-level DP-SGD, and a unit
   with 20 records is not clipped harder than one with 1. Sensitivity is C either way (clipping).
3. Clip: ḡ_u = g_u · min(1, C / ‖g_u‖₂) (one norm over all trainable parameters).
4. Noisy sum: G = Σ_u ḡ_u + N(0, σ²C² I); update direction G / (q·N) (expected unit count; the
   "mean" loss reduction of opacus). Empty samples still take a noise-only step.

Adding or removing one unit changes Σ_u ḡ_u by at most C, so the accountant of the subsampled
Gaussian over N units (:mod:`unlearning_engine.dp_accounting`) gives (ε, δ) per *unit*; with the
unit = a data subject that is (ε, δ) per person whatever the number of their records.

Per-example gradients come from opacus' ``GradSampleModule`` (hooks, ``loss_reduction="sum"``)
and are aggregated per unit before clipping (``unit_gradient="aggregate"``, the default: the
model sees each record as a separate sequence, exactly as in non-private training).
``unit_gradient="pack"`` concatenates a unit's selected records into one sequence (BOS…EOS
BOS…EOS) so the per-sample gradient *is* the unit gradient; the loss is then the mean NLL over all
the unit's supervised tokens (a token-weighted mean) and later records attend to earlier ones — a
different training signal, offered for speed comparison (see BENCHMARKS.md).

Randomness of the mechanism (Poisson sampling, record subsets, noise) comes from generators
seeded with 64 bits of ``os.urandom`` that are never stored or logged (:func:`os_entropy_generator`);
nothing else in training draws from them, so non-DP parts stay reproducible from the seed.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import torch

from .data import Example
from .errors import UnlearningInputError
from .training import EncodedExample, collate, per_example_nll

PRIVACY_UNITS = ("subject", "record")
UNIT_GRADIENTS = ("aggregate", "pack")
NOISE_SOURCE_URANDOM = ("torch.Generator seeded with 64 bits from os.urandom, seed never stored "
                        "(not a CSPRNG: opacus secure_mode needs torchcsprng, not installable)")
NOISE_SOURCE_CSPRNG = "torchcsprng /dev/urandom generator (opacus secure_mode)"


def group_units(examples: Sequence[Example], privacy_unit: str) -> list[list[int]]:
    """Indices of ``examples`` grouped into privacy units, in order of first appearance.

    ``"subject"``: records with the same ``Example.subject`` form one unit; a record without a
    subject is its own unit. ``"record"``: every record is its own unit.

    Raises:
        UnlearningInputError: unknown ``privacy_unit``.
    """
    if privacy_unit not in PRIVACY_UNITS:
        raise UnlearningInputError(f"privacy_unit must be one of {', '.join(PRIVACY_UNITS)}")
    if privacy_unit == "record":
        return [[i] for i in range(len(examples))]
    units: dict[object, list[int]] = {}
    for i, ex in enumerate(examples):
        key = ("subject", ex.subject) if ex.subject is not None else ("record", i)
        units.setdefault(key, []).append(i)
    return list(units.values())


def os_entropy_generator(device: torch.device | str = "cpu", secure_mode: bool = False):
    """A fresh generator for DP randomness: torchcsprng when ``secure_mode``, else a torch
    generator seeded from ``os.urandom(8)``. Returns ``(generator, noise_source_description)``.

    Raises:
        UnlearningInputError: ``secure_mode`` without torchcsprng installed.
    """
    if secure_mode:
        try:
            import torchcsprng  # type: ignore[import-not-found]
        except ImportError:
            raise UnlearningInputError(
                "secure_mode needs torchcsprng, which is not installed; leave secure_mode off "
                "(noise then comes from an os.urandom-seeded generator)") from None
        return torchcsprng.create_random_device_generator("/dev/urandom"), NOISE_SOURCE_CSPRNG
    g = torch.Generator(device=device)
    g.manual_seed(int.from_bytes(os.urandom(8), "little"))
    return g, NOISE_SOURCE_URANDOM


def pack_unit(encs: Sequence[EncodedExample]) -> EncodedExample:
    """Concatenate a unit's encoded records into one sequence (ids and labels side by side)."""
    ids: list[int] = []
    labels: list[int] = []
    for e in encs:
        ids.extend(e.input_ids)
        labels.extend(e.labels)
    return EncodedExample(tuple(ids), tuple(labels))


def sample_step(units: list[list[int]], q: float, m: int, gen: torch.Generator) -> list[list[int]]:
    """One Poisson sample: the record indices used for each sampled unit (≤ ``m`` per unit)."""
    mask = torch.rand(len(units), generator=gen) < q
    out = []
    for u in mask.nonzero().flatten().tolist():
        recs = units[u]
        if len(recs) > m:
            pick = torch.randperm(len(recs), generator=gen)[:m].tolist()
            recs = [recs[i] for i in sorted(pick)]
        out.append(list(recs))
    return out


def _chunks(sampled: list[list[int]], per_chunk: int, rows_of) -> list[list[list[int]]]:
    """Group whole units into chunks of at most ``per_chunk`` rows (a unit is never split)."""
    chunks, cur, n = [], [], 0
    for unit in sampled:
        r = rows_of(unit)
        if cur and n + r > per_chunk:
            chunks.append(cur)
            cur, n = [], 0
        cur.append(unit)
        n += r
    if cur:
        chunks.append(cur)
    return chunks


def clipped_unit_sum(gsm, params: list[torch.nn.Parameter], batch: dict[str, torch.Tensor],
                     unit_index: torch.Tensor, weights: torch.Tensor, n_units: int,
                     max_grad_norm: float, per_example_loss=None) -> tuple[list[torch.Tensor], torch.Tensor, float, int]:
    """Σ_u clip_C(Σ_i w_i ∇ℓ_i over the rows i of unit u) for one physical batch.

    Args:
        gsm: opacus ``GradSampleModule`` (``loss_reduction="sum"``) around the model.
        batch: :func:`~unlearning_engine.training.collate` output on the model's device, B rows.
        unit_index: (B,) int64, the unit (0 … n_units−1) of each row.
        weights: (B,) fp32, w_i (1/|S_u| for the mean over a unit's records, 1 for packed rows).
        per_example_loss: ``(module, batch) -> (B,)`` per-row losses; default the causal-LM
            :func:`~unlearning_engine.training.per_example_nll` (other families, e.g. classifiers,
            pass their cross-entropy; the count returned is then the number of rows).
    Returns:
        (per-parameter clipped sums, (n_units,) unclipped unit-gradient norms, summed row loss,
        supervised tokens).
    """
    losses = (per_example_loss or per_example_nll)(gsm, batch)
    with warnings.catch_warnings():
        # torch warns "Full backward hook is firing ... since no inputs require gradients" for a
        # hooked module none of whose inputs requires grad: the trainable nn.Embedding (its input
        # is int64 token ids, which can never require grad) and, with LoRA on a frozen embedding,
        # the first adapter layer. Harmless here: opacus' capture_backprops_hook uses only the
        # module's grad_output (the backprops) and the activations captured in forward, never
        # grad_input, so the per-sample gradients are exact (test_clipped_unit_sum_matches_naive_*).
        # Scoped to this backward pass and this message only.
        warnings.filterwarnings("ignore", category=UserWarning,
                                message="Full backward hook is firing when gradients are computed")
        losses.sum().backward()
    unit_grads = []
    sq = torch.zeros(n_units, device=losses.device)
    identity = n_units == unit_index.numel()
    for p in params:
        gs = p.grad_sample
        w = weights.to(gs.dtype).view(-1, *([1] * (gs.dim() - 1)))
        p.grad_sample = None
        g = gs.mul_(w)  # in place: opacus' per-sample tensor is not read again (no second B×P copy)
        if not identity:
            g = torch.zeros((n_units, *gs.shape[1:]), dtype=gs.dtype,
                            device=gs.device).index_add_(0, unit_index, g)
        unit_grads.append(g)
        sq += g.flatten(1).pow(2).sum(1).float()
        p.grad = None
    norms = sq.sqrt()
    factor = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    sums = [torch.einsum("u,u...->...", factor.to(g.dtype), g) for g in unit_grads]
    ntok = (int((batch["labels"][:, 1:] != -100).sum()) if per_example_loss is None
            else int(losses.numel()))
    return sums, norms.detach(), float(losses.detach().sum()), ntok


def unit_step_gradient(gsm, params, enc: Sequence[EncodedExample], sampled: list[list[int]], *,
                       pad_id: int, unit_gradient: str, max_physical_batch_size: int,
                       max_grad_norm: float, device: torch.device, collate_fn=None,
                       per_example_loss=None):
    """Clipped per-unit gradient sum of one step (no noise) over physical batches.

    ``collate_fn``/``per_example_loss``: batch builder and per-row loss of another model family
    (default: the causal-LM :func:`~unlearning_engine.training.collate` / per-example NLL).

    Returns (per-parameter sums, mean record loss or NaN, supervised tokens, records used).
    """
    sums = [torch.zeros_like(p) for p in params]
    loss_sum, rows, ntok = 0.0, 0, 0
    pack = unit_gradient == "pack"
    rows_of = (lambda u: 1) if pack else len
    for chunk in _chunks(sampled, max_physical_batch_size, rows_of):
        if pack:
            items = [pack_unit([enc[i] for i in u]) for u in chunk]
            uidx = list(range(len(chunk)))
            w = [1.0] * len(chunk)
        else:
            items = [enc[i] for u in chunk for i in u]
            uidx = [k for k, u in enumerate(chunk) for _ in u]
            w = [1.0 / len(u) for u in chunk for _ in u]
        batch = {k: v.to(device) for k, v in (collate_fn or collate)(items, pad_id).items()}
        s, _, lsum, nt = clipped_unit_sum(
            gsm, params, batch, torch.tensor(uidx, device=device),
            torch.tensor(w, device=device), len(chunk), max_grad_norm, per_example_loss)
        for acc, x in zip(sums, s, strict=True):
            acc += x
        loss_sum += lsum
        rows += len(items)
        ntok += nt
    return sums, (loss_sum / rows if rows else math.nan), ntok, sum(len(u) for u in sampled)


def add_noise_and_normalise(params, sums, *, sigma: float, max_grad_norm: float,
                            expected_units: float, gen: torch.Generator) -> None:
    """p.grad = (Σ_u ḡ_u + N(0, σ²C²)) / (q·N) for every trainable parameter."""
    for p, s in zip(params, sums, strict=True):
        noise = torch.normal(0.0, sigma * max_grad_norm, size=p.shape, generator=gen,
                             device=s.device, dtype=s.dtype)
        p.grad = (s + noise) / expected_units


def check_pack_fits(enc, units, m: int, max_positions: int | None) -> None:
    """Raise UnlearningInputError when a packed unit would exceed the model's positions."""
    if max_positions is None:
        return
    longest = max(sum(sorted((len(enc[i].input_ids) for i in u), reverse=True)[:m]) for u in units)
    if longest > max_positions:
        raise UnlearningInputError(
            f"unit_gradient='pack': a packed unit has {longest} tokens > the model's "
            f"{max_positions} positions; lower max_records_per_unit or use 'aggregate'")
