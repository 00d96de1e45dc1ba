"""Peak-memory estimate of one DP-SGD step, and the physical batch that fits a budget (issue 13 item 6).

DP-SGD (Abadi et al. 2016, arXiv 1607.00133, Alg. 1) needs every example's own gradient before
clipping: opacus materialises ``grad_sample`` of shape ``(B, *p.shape)`` for every trainable
parameter p, so the per-sample gradients alone cost ``B × P_trainable × 4`` bytes in fp32 — for a
135M-parameter model and B = 32 that is 17 GB. An out-of-memory crash mid-job is the failure this
module prevents: the caller picks the physical batch (``max_physical_batch_size`` of
:func:`unlearning_engine.dp.train_dp_base`: a Poisson sample of units is processed in chunks of at
most that many rows with one optimizer step per logical batch — what opacus' ``BatchMemoryManager``
does for record-level DP-SGD, here for unit-level sampling, which it does not support; the privacy
accounting does not change) from the estimate, or refuses before training with the estimate and
the budget.

Estimate (bytes, all tensors fp32 = 4 bytes; the DP path rejects mixed precision, DESIGN §6):

- model weights: ``P_total × 4``
- gradient state: ``p.grad`` plus the step's clipped-sum accumulator (``dp_user.unit_step_gradient``):
  ``2 × P_trainable × 4``
- AdamW state (exp_avg, exp_avg_sq): ``2 × P_trainable × 4``
- per-sample gradients: ``B × P_trainable × 4`` (opacus' ``grad_sample``, weighted in place per unit)
- activations kept for backward, per layer (after Korthikanti et al. 2022, arXiv 2205.05198 §4.1,
  ``sbh(34 + 5as/h)`` bytes for 16-bit activations with dropout, rewritten in fp32 elements for a
  Llama block without dropout and with a SwiGLU MLP of width i):
  ``B·s·(ACT_HIDDEN·h + ACT_INTERMEDIATE·i) + ACT_SCORES·B·a·s²`` elements
- LM head: logits, log-softmax and their gradient: ``ACT_LOGITS · B·s·V`` elements
- a fixed runtime overhead :data:`RUNTIME_OVERHEAD_BYTES` (measured, see below)

On CPU the figure that kills a worker is the resident set size, and glibc keeps freed heap blocks
(every tensor up to its dynamic mmap threshold, 32 MiB) in the process for reuse, so the peak RSS
of a DP run exceeds its live-tensor peak: the CPU estimate adds :data:`CPU_ALLOCATOR_RETENTION`
× the tensor terms (``allocator_retention``). On CUDA (``device="cuda"``) that term is 0: the
figure compared is ``torch.cuda.max_memory_allocated`` (live tensors).

The constants are stated below; :func:`dp_memory_breakdown` returns every term. Measured with
``bench/dp_memory.py`` (a fresh process per configuration, peak RSS over the RSS after the library
imports, CPU, physical batch 8, 62-token sequences; BENCHMARKS.md §11): with the default allocator
the live-tensor terms alone were 0.51–0.58 of the measured peak RSS for the 0.93M-parameter LoRA
and 11.9M-parameter full/LoRA models; the same runs with ``MALLOC_MMAP_THRESHOLD_=131072``
(freed blocks returned to the system) peaked at 0.70 (full) and 0.62 (LoRA) of the default
allocator's figure, which is what :data:`CPU_ALLOCATOR_RETENTION` models. With it the estimate is
0.78–1.06 of the measured peak on the four benchmark configurations (the 0.78 is the small LoRA
model, whose peft adapter layers keep activations this formula does not count). The estimate is a
planning figure, not an exact count: the autograd graph's small tensors and opacus' transient
buffers are not modelled, and a tiny model's fixed cost varied between 35 and 73 MiB across runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import UnlearningInputError

BYTES_FP32 = 4
#: fp32 elements kept per token and hidden unit per layer: RMSNorm inputs (2), q/k/v/o projection
#: inputs and outputs (4), RoPE'd q and k (2), attention output and residual (2).
ACT_HIDDEN = 10
#: per token and MLP unit per layer: gate, up, SiLU(gate), SiLU(gate)·up (the down-projection input).
ACT_INTERMEDIATE = 4
#: per head and (query, key) pair per layer: the eager attention scores and their softmax.
ACT_SCORES = 2
#: per token and vocabulary entry: logits, log-softmax output and the logits' gradient.
ACT_LOGITS = 3
#: Fixed cost of a DP training step beyond its tensors (artifact and tokenizer loading, the data
#: loader, first-use kernel workspaces), with the libraries already imported: 35.5 MiB of peak RSS
#: growth measured for the 40k-parameter test model on CPU (``bench/dp_memory.py``, 4 runs
#: 35.0–35.9 MiB) less its ~10 MiB of modelled tensors and allocator retention, rounded.
RUNTIME_OVERHEAD_BYTES = 24 * 2**20
#: Fraction of the tensor terms that glibc keeps resident on CPU after they are freed (see the
#: module docstring): 1/0.70 − 1 ≈ 0.43 (full fine-tune) and 1/0.62 − 1 ≈ 0.61 (LoRA) measured, 0.5 used.
CPU_ALLOCATOR_RETENTION = 0.5
#: Largest physical batch :func:`choose_physical_batch` proposes (the engine's default cap).
DEFAULT_MAX_PHYSICAL_BATCH = 32


class MemoryBudgetError(UnlearningInputError):
    """Even a physical batch of 1 does not fit the memory budget; the message holds both figures."""


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a decoder-only transformer."""

    total_params: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    vocab_size: int


def _get(cfg: Any, name: str, default: Any = None) -> Any:
    return cfg.get(name, default) if isinstance(cfg, dict) else getattr(cfg, name, default)


def _params_from_config(cfg: Any) -> int:
    """Parameter count of a Llama-style config (untied embeddings unless ``tie_word_embeddings``)."""
    h, i, n, v = (_get(cfg, "hidden_size"), _get(cfg, "intermediate_size"), _get(cfg, "num_hidden_layers"),
                  _get(cfg, "vocab_size"))
    heads = _get(cfg, "num_attention_heads")
    kv = _get(cfg, "num_key_value_heads", heads) or heads
    head_dim = h // heads
    attn = h * h * 2 + 2 * h * kv * head_dim
    per_layer = attn + 3 * h * i + 2 * h
    embed = v * h * (1 if _get(cfg, "tie_word_embeddings", False) else 2)
    return n * per_layer + embed + h


def model_shape(model_config_or_model: Any) -> ModelShape:
    """:class:`ModelShape` of a torch model (its ``config``), a HF config or a plain dict.

    Raises:
        UnlearningInputError: the object has no hidden size, layer count, heads or vocabulary.
    """
    obj = model_config_or_model
    total = None
    if hasattr(obj, "parameters") and callable(obj.parameters):
        total = sum(p.numel() for p in obj.parameters())
        obj = getattr(obj, "config", None)
        if obj is not None and hasattr(obj, "get_text_config"):
            obj = obj.get_text_config()
    needed = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    if obj is None or any(_get(obj, k) is None for k in needed):
        raise UnlearningInputError(f"cannot estimate memory: the model config lacks one of {list(needed)}")
    h = int(_get(obj, "hidden_size"))
    return ModelShape(
        total_params=int(total if total is not None else _params_from_config(obj)),
        hidden_size=h, intermediate_size=int(_get(obj, "intermediate_size", 4 * h) or 4 * h),
        num_layers=int(_get(obj, "num_hidden_layers")), num_heads=int(_get(obj, "num_attention_heads")),
        vocab_size=int(_get(obj, "vocab_size")),
    )


def dp_memory_breakdown(model_config_or_model: Any, trainable_params: int, physical_batch: int,
                        seq_len: int, *, device: str = "cpu") -> dict[str, int]:
    """Every term of :func:`dp_memory_estimate` in bytes, plus ``"total"``. ``device``: ``"cpu"``
    (adds ``allocator_retention``, see the module docstring) or ``"cuda..."`` (live tensors only).

    Raises:
        UnlearningInputError: non-positive batch, sequence length or trainable parameter count.
    """
    for name, value in (("trainable_params", trainable_params), ("physical_batch", physical_batch),
                        ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UnlearningInputError(f"{name} must be a positive integer, got {value!r}")
    m = model_shape(model_config_or_model)
    b, s = physical_batch, seq_len
    per_layer = b * s * (ACT_HIDDEN * m.hidden_size + ACT_INTERMEDIATE * m.intermediate_size) \
        + ACT_SCORES * b * m.num_heads * s * s
    out = {
        "weights": m.total_params * BYTES_FP32,
        "gradients": 2 * trainable_params * BYTES_FP32,
        "optimizer_state": 2 * trainable_params * BYTES_FP32,
        "per_sample_gradients": b * trainable_params * BYTES_FP32,
        "activations": m.num_layers * per_layer * BYTES_FP32,
        "logits": ACT_LOGITS * b * s * m.vocab_size * BYTES_FP32,
    }
    tensors = sum(out.values())
    out["allocator_retention"] = 0 if str(device).startswith("cuda") else int(CPU_ALLOCATOR_RETENTION * tensors)
    out["runtime_overhead"] = RUNTIME_OVERHEAD_BYTES
    out["total"] = sum(out.values())
    return out


def dp_memory_estimate(model_config_or_model: Any, trainable_params: int, physical_batch: int,
                       seq_len: int, *, device: str = "cpu") -> int:
    """Estimated peak bytes of one DP-SGD step (forward, backward with per-sample gradients,
    clipping, noise, AdamW) with ``physical_batch`` sequences of ``seq_len`` tokens.

    ``model_config_or_model``: a torch model, a HF config or a dict with ``hidden_size``,
    ``intermediate_size``, ``num_hidden_layers``, ``num_attention_heads``, ``vocab_size``;
    ``trainable_params``: parameters that get per-sample gradients (all of them for full DP-SGD,
    the adapter's for LoRA). See the module docstring for the formula and its sources.
    """
    return dp_memory_breakdown(model_config_or_model, trainable_params, physical_batch, seq_len,
                               device=device)["total"]


def choose_physical_batch(budget_bytes: int, model_config_or_model: Any, trainable_params: int, seq_len: int,
                          *, max_batch: int = DEFAULT_MAX_PHYSICAL_BATCH, min_batch: int = 1,
                          device: str = "cpu") -> int:
    """Largest physical batch in ``[1, max_batch]`` whose :func:`dp_memory_estimate` fits ``budget_bytes``.

    ``min_batch``: rows the step needs in one batch whatever the choice (the largest privacy unit,
    which is never split); it must fit too, and it is the answer when it exceeds ``max_batch``.

    Raises:
        MemoryBudgetError: a batch of ``max(1, min_batch)`` rows already exceeds the budget (message:
            the estimate, the budget, and what to change).
        UnlearningInputError: non-positive budget, ``max_batch`` or ``min_batch``.
    """
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 1:
        raise UnlearningInputError(f"budget_bytes must be a positive integer, got {budget_bytes!r}")
    if max_batch < 1 or min_batch < 1:
        raise UnlearningInputError(f"max_batch and min_batch must be >= 1, got {max_batch}, {min_batch}")
    one = dp_memory_estimate(model_config_or_model, trainable_params, min_batch, seq_len, device=device)
    if one > budget_bytes:
        rows = ("a physical batch of 1" if min_batch == 1 else
                f"a physical batch of {min_batch} rows (one data subject's records, never split; lower "
                f"max_records_per_unit)")
        raise MemoryBudgetError(
            f"DP training needs an estimated {one / 2**20:,.0f} MiB even with {rows} "
            f"({trainable_params:,} trainable parameters, sequences of {seq_len} tokens), above the memory "
            f"budget of {budget_bytes / 2**20:,.0f} MiB (DP_MEMORY_BUDGET_BYTES). Use LoRA (fewer trainable "
            f"parameters), shorter sequences, a smaller model, or raise the budget on a worker with more memory.")
    if min_batch >= max_batch:
        return min_batch
    lo, hi = min_batch, max_batch
    while lo < hi:  # the estimate grows with the batch: binary search the largest that fits
        mid = (lo + hi + 1) // 2
        if dp_memory_estimate(model_config_or_model, trainable_params, mid, seq_len, device=device) <= budget_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo
