"""DP-SGD fine-tuning of the DP base model (DP2Unlearning step 1, DESIGN §6).

Mechanism: DP-SGD (Abadi et al., 2016, arXiv 1607.00133, Alg. 1) through opacus
(https://opacus.ai/api/privacy_engine.html): Poisson sampling with rate q = batch_size / N,
per-example gradient clipping to L2 norm C = ``max_grad_norm``, Gaussian noise N(0, σ²C²)
added to the summed clipped gradients, σ chosen by ``PrivacyEngine.make_private_with_epsilon``
for the target (ε, δ) over ``epochs`` epochs, physical batches bounded with
``BatchMemoryManager``. The privacy unit is one training record. The achieved ε is recomputed
from the accountant after the real number of steps and must be ≤ the target.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .data import Example
from .errors import PrivacyBudgetError, UnlearningInputError
from .modeling import load_artifact, save_artifact
from .training import (
    EncodedExample,
    Progress,
    ProgressReporter,
    collate,
    encode_examples,
    make_optimizer_and_schedule,
    per_example_nll,
    seed_everything,
)

#: Fewer records than this cannot support a meaningful per-record DP claim (δ < 1/N gets
#: vacuous, Poisson batches get tiny); train_dp_base refuses.
MIN_DP_RECORDS = 32
#: Largest physical batch per forward/backward (per-sample gradients cost B× memory).
MAX_PHYSICAL_BATCH = 32


@dataclass
class PrivacyLedger:
    """What the certificate states about the DP base (DESIGN §6.4).

    ``epsilon`` is the achieved ε recomputed by the accountant after ``steps`` noisy steps at
    sample rate ``sample_rate`` (= q, expected batch / N) with noise multiplier σ
    (``noise_multiplier``, noise std = σ·``max_grad_norm``); ``delta`` is δ; the privacy unit
    is one record of the ``n_records`` training records; ``weights_sha256`` identifies the
    saved DP base artifact.
    """

    target_epsilon: float
    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    epochs: int
    accountant: str
    max_grad_norm: float
    n_records: int
    weights_sha256: str
    wall_seconds: float = 0.0
    tokens: int = 0
    privacy_unit: str = "record"
    #: LoRA config when only an adapter was trained with DP-SGD (merged into the artifact)
    lora: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def group_privacy(epsilon: float, delta: float, k: int) -> tuple[float, float]:
    """Group-privacy guarantee for a subject with ``k`` records: (k·ε, k·e^{(k−1)ε}·δ).

    Source: group privacy of (ε, δ)-DP (Vadhan, "The Complexity of Differential Privacy", 2017,
    Lemma 2.2; Dwork & Roth 2014 Thm 2.2 for δ=0), as used by DP2Unlearning (arXiv 2504.13774)
    and DESIGN §6.4. Returns floats (δ may exceed 1, i.e. be vacuous, for large k·ε).

    Raises:
        ValueError: k < 1, ε < 0 or δ outside [0, 1].
    """
    if int(k) != k or k < 1:
        raise ValueError("k must be an integer >= 1")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError("need epsilon >= 0 and 0 <= delta <= 1")
    k = int(k)
    return k * epsilon, k * math.exp((k - 1) * epsilon) * delta


class _EncodedDataset(Dataset):
    def __init__(self, enc: Sequence[EncodedExample]):
        self.enc = list(enc)

    def __len__(self) -> int:
        return len(self.enc)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        # opacus inspects dataset[0] as an iterable of tensors
        e = self.enc[i]
        return torch.tensor(e.input_ids), torch.tensor(e.labels)


def _collate_dp(batch, pad_id: int):
    return collate([EncodedExample(tuple(a.tolist()), tuple(b.tolist())) for a, b in batch], pad_id)


def _is_empty(batch) -> bool:
    """True for an empty Poisson batch (opacus yields zero-row tensors, or a list of them when
    the very first batch is empty)."""
    if isinstance(batch, dict):
        return batch["input_ids"].shape[0] == 0
    return len(batch) == 0 or all(getattr(t, "shape", (0,))[0] == 0 for t in batch)


def resolve_delta(n_records: int, delta: float | None) -> float:
    """δ default 1/(10·N); raises UnlearningInputError unless 0 < δ < 1/N."""
    if delta is None:
        delta = 1.0 / (10 * n_records)
    if not (0 < delta < 1.0 / n_records):
        raise UnlearningInputError(
            f"delta={delta:g} must satisfy 0 < delta < 1/N = {1.0 / n_records:g} (N={n_records} records)")
    return float(delta)


def train_dp_base(base_dir: str | Path, examples: list[Example], out_dir: str | Path, *,
                  target_epsilon: float, delta: float | None = None, max_grad_norm: float = 1.0,
                  epochs: int, lr: float, batch_size: int, seed: int = 0,
                  progress: Callable[[Progress], None] | None = None, accountant: str = "rdp",
                  min_records: int = MIN_DP_RECORDS,
                  max_physical_batch_size: int = MAX_PHYSICAL_BATCH,
                  secure_mode: bool = False, mixed_precision: str | None = None,
                  lora: dict | None = None, device: str | None = None) -> PrivacyLedger:
    """Fine-tune the base artifact at ``base_dir`` on ``examples`` with DP-SGD; save to ``out_dir``.

    Per-example loss = mean NLL over the example's supervised tokens; batch loss = mean over
    examples (opacus ``loss_reduction="mean"``), so each record's clipped gradient has norm ≤ C.
    Expected batch size ``batch_size`` (q = batch_size/N), AdamW on the privatised gradients
    (post-processing), linear warm-up/decay. Empty Poisson batches still make a noise-only step
    (needed for the accounting to be valid). The GradSampleModule is unwrapped before saving,
    so the artifact loads strictly into a plain ``LlamaForCausalLM``.

    Args:
        target_epsilon: ε target (> 0). delta: δ, default 1/(10N), must be < 1/N.
        accountant: ``"rdp"`` (Mironov 2017) or ``"prv"`` (Gopi et al. 2021), opacus accountants.
        max_physical_batch_size: largest forward/backward chunk (BatchMemoryManager); does not
            change the privacy accounting.
        secure_mode: opacus cryptographically secure noise (needs ``torchcsprng``); off by
            default (noise from torch's PRNG, the usual research setting).
        mixed_precision: must be ``None``, ``"no"`` or ``"fp32"``: DP-SGD's per-sample clipping
            and noise are computed in fp32 (DESIGN §6 pitfalls); bf16/fp16 is rejected.
        lora: ``None`` (full-parameter DP-SGD) or a LoRA config (``{"r", "alpha", "dropout",
            "target_modules"}``, see :func:`unlearning_engine.hparams.v_lora`): only the adapter
            is trained, so per-sample gradients, clipping and noise cover the adapter weights
            only (the frozen base is public: the pre-trained model). The model is moved to its
            device first, then wrapped by peft, then by opacus (DESIGN §6); the adapter is merged
            into the saved artifact, so (ε, δ) covers the whole saved model by post-processing.
        device: ``"cpu"``, ``"cuda"``... (default: CUDA when available, else CPU).
    Returns:
        :class:`PrivacyLedger` with the achieved ε.
    Raises:
        UnlearningInputError: N < ``min_records``, δ ≥ 1/N, ε ≤ 0, batch_size ≥ N, bad accountant,
            mixed precision requested, or a base artifact whose weights are not fp32.
        PrivacyBudgetError: achieved ε > target (never expected; the artifact is not kept).
    """
    from opacus import PrivacyEngine
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    if mixed_precision not in (None, "no", "fp32"):
        raise UnlearningInputError(
            f"DP training with mixed precision ({mixed_precision!r}) is not supported: per-sample "
            "gradients, clipping and noise must be computed in fp32")
    n = len(examples)
    if n < min_records:
        raise UnlearningInputError(f"DP training needs at least {min_records} records, got {n}")
    if not target_epsilon > 0:
        raise UnlearningInputError("target_epsilon must be > 0")
    if accountant not in ("rdp", "prv"):
        raise UnlearningInputError("accountant must be 'rdp' or 'prv'")
    if not 1 <= batch_size < n:
        raise UnlearningInputError(f"batch_size must be in [1, N) (N={n})")
    if epochs < 1 or not lr > 0 or not max_grad_norm > 0:
        raise UnlearningInputError("epochs >= 1, lr > 0 and max_grad_norm > 0 required")
    delta = resolve_delta(n, delta)

    if lora is not None:
        from .hparams import v_lora
        lora = v_lora("lora", lora)
    g = seed_everything(seed)
    dev = torch.device(device) if device else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = load_artifact(base_dir, device=dev, with_eco=False)
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise UnlearningInputError("DP training needs fp32 weights (mixed precision is rejected)")
    if lora is not None:
        from .lora import wrap_lora
        model = wrap_lora(model, lora)
    enc = encode_examples(tokenizer, examples)
    model.train()
    dl = DataLoader(_EncodedDataset(enc), batch_size=batch_size, shuffle=False,
                    collate_fn=partial(_collate_dp, pad_id=tokenizer.pad_token_id), generator=g)
    steps_per_epoch = len(dl)
    total = epochs * steps_per_epoch
    opt, sched = make_optimizer_and_schedule(model.parameters(), lr=lr, total_steps=total)
    engine = PrivacyEngine(accountant=accountant, secure_mode=secure_mode)
    pmodel, popt, pdl = engine.make_private_with_epsilon(
        module=model, optimizer=opt, data_loader=dl, target_epsilon=target_epsilon,
        target_delta=delta, epochs=epochs, max_grad_norm=max_grad_norm, poisson_sampling=True,
        grad_sample_mode="hooks")
    rep = ProgressReporter(total, "dp_train", progress)
    t0 = time.perf_counter()
    step, tokens = 0, 0
    params = [p for p in pmodel.parameters() if p.requires_grad]
    for _ in range(epochs):
        with BatchMemoryManager(data_loader=pdl, max_physical_batch_size=max_physical_batch_size,
                                optimizer=popt) as mdl:
            loss_sum, n_tok = 0.0, 0
            for batch in mdl:
                if isinstance(batch, dict):
                    batch = {k: v.to(dev) for k, v in batch.items()}
                if _is_empty(batch):
                    # empty Poisson batch: zero per-sample grads, the optimizer adds noise only
                    for p in params:
                        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
                    lval, ntok = float("nan"), 0
                else:
                    loss = per_example_nll(pmodel, batch).mean()
                    loss.backward()
                    lval = loss.item()
                    ntok = int((batch["labels"][:, 1:] != -100).sum())
                popt.step()
                popt.zero_grad(set_to_none=True)
                tokens += ntok
                if ntok:
                    loss_sum += lval * ntok
                    n_tok += ntok
                if not popt._is_last_step_skipped:
                    sched.step()
                    step += 1
                    rep(step, loss_sum / max(n_tok, 1), n_tok)
                    loss_sum, n_tok = 0.0, 0
    wall = time.perf_counter() - t0
    eps = float(engine.accountant.get_epsilon(delta=delta))
    if eps > target_epsilon + 1e-9:
        raise PrivacyBudgetError(f"achieved epsilon {eps:.4f} > target {target_epsilon}")
    plain = pmodel._module
    if hasattr(pmodel, "_close"):
        pmodel._close()
    for p in plain.parameters():
        for attr in ("grad_sample", "_forward_counter", "summed_grad"):
            if hasattr(p, attr):
                try:
                    delattr(p, attr)
                except AttributeError:
                    setattr(p, attr, None)
        p.grad = None
    if lora is not None:
        from .lora import merge
        plain = merge(plain)
    plain.eval()
    sha = save_artifact(plain.cpu(), tokenizer, out_dir)
    return PrivacyLedger(target_epsilon=float(target_epsilon), epsilon=eps, delta=delta,
                         noise_multiplier=float(popt.noise_multiplier),
                         sample_rate=float(getattr(pdl, "sample_rate", 1.0 / steps_per_epoch)), steps=step, epochs=epochs,
                         accountant=accountant, max_grad_norm=float(max_grad_norm), n_records=n,
                         weights_sha256=sha, wall_seconds=wall, tokens=tokens, lora=lora)
