"""Memory planning on the Django side: the DP physical batch from ``DP_MEMORY_BUDGET_BYTES``, and an
actionable reason when a job runs out of memory (issue 13 item 6, issue 23 item 2).

The estimate itself is :mod:`unlearning_engine.memory_plan` (no Django there).
"""
from __future__ import annotations

import logging
import os

from django.conf import settings

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
    on CUDA, physical RAM on CPU)."""
    configured = getattr(settings, "DP_MEMORY_BUDGET_BYTES", None)
    if configured:
        return int(configured)
    import torch

    if (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        total = torch.cuda.get_device_properties(torch.device(device or "cuda")).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(0.8 * total)


def dp_physical_batch_plan(*, model, tokenizer, examples, expected_batch: int, lora_trainable: int | None = None,
                           device: str | None = None, log=lambda msg: None) -> int:
    """Largest physical batch (≤ ``min(expected_batch, 32)``) whose DP-SGD step fits the budget.

    ``seq_len`` is the longest encoded example (capped at the model's context); ``lora_trainable``
    the adapter's parameter count when only a LoRA adapter is trained (default: every parameter).

    Raises:
        ServiceError: even a physical batch of 1 does not fit; the message gives the estimate, the
            budget and what to change (raised before any DP training starts).
    """
    from unlearning_engine.training import encode_examples

    seq_len = max((len(e.input_ids) for e in encode_examples(tokenizer, examples)), default=1)
    trainable = lora_trainable or sum(p.numel() for p in model.parameters() if p.requires_grad)
    budget = dp_memory_budget_bytes(device)
    try:
        batch = choose_physical_batch(budget, model, trainable, seq_len,
                                      max_batch=max(1, min(expected_batch, DEFAULT_MAX_PHYSICAL_BATCH)))
    except MemoryBudgetError as exc:
        raise ServiceError(str(exc)) from exc
    estimate = dp_memory_estimate(model, trainable, batch, seq_len)
    log(f"DP memory plan: physical batch {batch} (sequences ≤ {seq_len} tokens), estimated peak "
        f"{estimate / 2**20:,.0f} MiB of a {budget / 2**20:,.0f} MiB budget")
    return batch


def oom_reason(exc: BaseException, *, job=None) -> str:
    """An actionable failure reason for a job that ran out of memory (instead of a bare "MemoryError:")."""
    where = f"method '{job.method}'" if job is not None else "the job"
    hp = (job.hyperparameters or {}) if job is not None else {}
    batch = hp.get("batch_size")
    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return (f"out of memory while running {where} ({detail}). Retry with a smaller batch_size"
            f"{f' than {batch}' if batch else ''}, LoRA (hyperparameters.lora) or a smaller preset, or on a worker "
            f"with more memory; DP training uses DP_MEMORY_BUDGET_BYTES="
            f"{getattr(settings, 'DP_MEMORY_BUDGET_BYTES', None) or 'unset (80% of the device)'} to pick its "
            f"physical batch.")


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
