"""Memory planning on the Django side: the DP physical batch from ``DP_MEMORY_BUDGET_BYTES``, and an
actionable reason when a job runs out of memory (issue 13 item 6, issue 23 item 2).

The estimate itself is :mod:`unlearning_engine.memory_plan` (no Django there).
"""
from __future__ import annotations

import logging
import os
from collections import Counter

from django.conf import settings

from unlearning_engine.dp import DEFAULT_MAX_RECORDS_PER_UNIT
from unlearning_engine.memory_plan import (
    DEFAULT_MAX_PHYSICAL_BATCH,
    MemoryBudgetError,
    choose_physical_batch,
    dp_memory_estimate,
)

from .services import ServiceError

logger = logging.getLogger(__name__)


def dp_memory_budget_bytes(device: str | None = None) -> int:
    """``DP_MEMORY_BUDGET_BYTES`` when set, else 80 % of the device's memory (the GPU's total memory
    on CUDA; on CPU the RAM available when the plan is made, :func:`_available_ram_bytes`)."""
    configured = getattr(settings, "DP_MEMORY_BUDGET_BYTES", None)
    if configured:
        return int(configured)
    if _device(device).startswith("cuda"):
        import torch

        total = torch.cuda.get_device_properties(torch.device(device or "cuda")).total_memory
    else:
        total = _available_ram_bytes()
    return int(0.8 * total)


def _device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _available_ram_bytes() -> int:
    """``MemAvailable`` of /proc/meminfo (what this worker can still take without swapping; its
    own resident memory and other processes' are already out), else the physical RAM."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _largest_unit_rows(examples, *, privacy_unit: str, max_records_per_unit: int, unit_gradient: str) -> int:
    """Rows of the largest physical batch one privacy unit forces: a unit is never split across
    physical batches (``unlearning_engine.dp_user``), so a data subject with m ≥ B records is a batch
    of min(m, ``max_records_per_unit``) rows; a packed unit or a record is one row."""
    if privacy_unit == "record" or unit_gradient == "pack":
        return 1
    counts = Counter(e.subject for e in examples if e.subject is not None)
    return max(1, min(int(max_records_per_unit), max(counts.values(), default=1)))


def dp_physical_batch_plan(*, model, tokenizer, examples, expected_batch: int, lora: dict | None = None,
                           privacy_unit: str = "subject", max_records_per_unit: int = DEFAULT_MAX_RECORDS_PER_UNIT,
                           unit_gradient: str = "aggregate", device: str | None = None,
                           log=lambda msg: None) -> int:
    """Largest physical batch (≤ ``min(expected_batch, 32)``) whose DP-SGD step fits the budget.

    The engine's physical batches play the part of opacus' ``BatchMemoryManager``: a Poisson
    sample of units is processed in chunks of at most this many rows, one optimizer step per
    logical batch, the accounting unchanged. ``seq_len`` is the longest encoded example (for
    ``unit_gradient="pack"``, the longest packed unit, capped at the model's context); the trainable
    parameters are the LoRA adapter's when ``lora`` is given (the model is wrapped to count them,
    so pass a copy you do not need afterwards), else every parameter; a data subject with more
    records than the batch is a batch of its own (:func:`_largest_unit_rows`), so the plan checks
    that batch too.

    Raises:
        ServiceError: even the smallest possible physical batch does not fit; the message gives the
            estimate, the budget and what to change (raised before any DP training starts).
    """
    from unlearning_engine.training import encode_examples

    lengths = [len(e.input_ids) for e in encode_examples(tokenizer, examples)]
    seq_len = max(lengths, default=1)
    if unit_gradient == "pack" and privacy_unit == "subject":
        per_unit = Counter()
        for ex, n in zip(examples, lengths, strict=True):
            per_unit[ex.subject if ex.subject is not None else id(ex)] += n
        context = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 10**9
        seq_len = min(int(context), max(per_unit.values(), default=1))
    if lora is not None:
        from unlearning_engine.hparams import v_lora
        from unlearning_engine.lora import wrap_lora

        model = wrap_lora(model, v_lora("lora", lora))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    min_rows = _largest_unit_rows(examples, privacy_unit=privacy_unit, max_records_per_unit=max_records_per_unit,
                                  unit_gradient=unit_gradient)
    budget = dp_memory_budget_bytes(device)
    dev = _device(device)
    try:
        batch = choose_physical_batch(budget, model, trainable, seq_len, min_batch=min_rows, device=dev,
                                      max_batch=max(1, min(expected_batch, DEFAULT_MAX_PHYSICAL_BATCH)))
    except MemoryBudgetError as exc:
        raise ServiceError(str(exc)) from exc
    estimate = dp_memory_estimate(model, trainable, max(batch, min_rows), seq_len, device=dev)
    log(f"DP memory plan: physical batch {batch} (largest unit {min_rows} rows, sequences ≤ {seq_len} tokens, "
        f"{trainable:,} trainable parameters), estimated peak {estimate / 2**20:,.0f} MiB of a "
        f"{budget / 2**20:,.0f} MiB budget")
    return batch


def oom_reason(exc: BaseException, *, job=None, where: str | None = None, batch=None) -> str:
    """An actionable failure reason for a job that ran out of memory (instead of a bare "MemoryError:").

    ``job``: an UnlearningJob (its method and batch_size are named); or ``where`` / ``batch`` for
    another kind of job (a preparation)."""
    if where is None:
        where = f"method '{job.method}'" if job is not None else "the job"
    if batch is None and job is not None:
        batch = (job.hyperparameters or {}).get("batch_size")
    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "no message"
    return (f"out of memory while running {where} ({type(exc).__name__}: {detail}). Retry with a smaller "
            f"batch_size{f' than {batch}' if batch else ''}, LoRA (hyperparameters.lora) or a smaller preset, or "
            f"on a worker with more memory; DP training uses DP_MEMORY_BUDGET_BYTES="
            f"{getattr(settings, 'DP_MEMORY_BUDGET_BYTES', None) or 'unset (80% of the device)'} to pick its "
            f"physical batch: lower it if the estimate was too optimistic for this worker.")


def is_out_of_memory(exc: BaseException) -> bool:
    """``MemoryError``, ``torch.cuda.OutOfMemoryError`` or a RuntimeError saying so (CPU allocator)."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "defaultcpuallocator" in text)
