"""Shared causal-LM training loop and log-likelihood helpers.

Supervision (DESIGN §5): for QA records only the answer tokens and the final EOS are
supervised (labels = token ids); BOS and prompt tokens get label -100. For plain text every
token after BOS (+ EOS) is supervised. Padding is applied per batch (right padding to the
longest sequence of the batch) and masked from the attention mask, never by token id, so a
real EOS stays supervised even when pad id == eos id.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from .data import Example, format_example, format_prompt

IGNORE_INDEX = -100


@dataclass
class Progress:
    """Progress report passed to the ``progress`` callback after each optimizer step.

    ``loss`` is the last step's loss (nats per supervised token, or the method's objective);
    ``tokens_per_s`` counts supervised tokens; ``eta_seconds`` is a linear extrapolation;
    ``phase`` names the stage (e.g. ``"train"``, ``"dp_train"``, ``"npo_gd"``).
    """

    step: int
    total: int
    loss: float
    tokens_per_s: float
    eta_seconds: float
    phase: str = "train"


@dataclass
class TrainStats:
    """Summary of a training run: optimizer steps, supervised tokens processed, wall seconds,
    and the mean loss over the last epoch (nats / supervised token)."""

    steps: int
    tokens: int
    wall_seconds: float
    final_loss: float


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of one record: ``input_ids`` = BOS + prompt + answer + EOS, ``labels`` aligned
    with ``input_ids`` (-100 on BOS and prompt tokens)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def n_supervised(self) -> int:
        return sum(1 for x in self.labels[1:] if x != IGNORE_INDEX)


def encode_example(tokenizer, ex: Example, max_length: int | None = None) -> EncodedExample:
    """Tokenise one record into ids and labels (see module docstring).

    The prompt ids are those of ``tokenizer(format_prompt(ex))`` (what generation will see); the
    full ids are those of ``tokenizer(format_example(ex))``; the tokenizer from
    :func:`~unlearning_engine.modeling.train_tokenizer` guarantees the prefix property (it is
    checked; on mismatch prompt+answer are tokenised separately and concatenated).
    ``max_length`` truncates from the right (EOS is kept as last token).

    Raises:
        UnlearningInputError: a record whose supervised part is empty.
    """
    from .errors import UnlearningInputError

    full = list(tokenizer(format_example(ex))["input_ids"])
    if not full or full[0] != tokenizer.bos_token_id:
        full = [tokenizer.bos_token_id] + full
    if ex.is_qa:
        prompt = list(tokenizer(format_prompt(ex))["input_ids"])
        if not prompt or prompt[0] != tokenizer.bos_token_id:
            prompt = [tokenizer.bos_token_id] + prompt
        if full[: len(prompt)] != prompt:
            ans = tokenizer(ex.answer, add_special_tokens=False)["input_ids"]
            full = prompt + list(ans)
        n_prompt = len(prompt)
    else:
        n_prompt = 1  # BOS only
    ids = full + [tokenizer.eos_token_id]
    if max_length is not None and len(ids) > max_length:
        ids = ids[: max_length - 1] + [tokenizer.eos_token_id]
    labels = [IGNORE_INDEX] * min(n_prompt, len(ids)) + ids[n_prompt:]
    enc = EncodedExample(tuple(ids), tuple(labels))
    if enc.n_supervised == 0:
        raise UnlearningInputError("record has no supervised tokens (empty answer?)")
    return enc


def encode_examples(tokenizer, examples: Sequence[Example],
                    max_length: int | None = None) -> list[EncodedExample]:
    """:func:`encode_example` for each record (``max_length`` defaults to the model's max)."""
    if max_length is None:
        max_length = getattr(tokenizer, "model_max_length", None)
        if max_length is not None and max_length > 1_000_000:
            max_length = None
    return [encode_example(tokenizer, ex, max_length) for ex in examples]


def collate(batch: Sequence[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its own longest sequence.

    Returns ``input_ids`` (B, L) int64, ``attention_mask`` (B, L) int64 (1 = real token),
    ``labels`` (B, L) int64 with -100 wherever ``attention_mask == 0`` or on prompt tokens,
    ``position_ids`` (B, L) int64 (0..len-1 per example, explicit for opacus per-sample math).
    An empty batch gives tensors of shape (0, 0).
    """
    B = len(batch)
    L = max((len(e.input_ids) for e in batch), default=0)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, L), dtype=torch.long)
    labels = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        input_ids[i, :n] = torch.tensor(e.input_ids)
        attention_mask[i, :n] = 1
        labels[i, :n] = torch.tensor(e.labels)
    labels = labels.masked_fill(attention_mask == 0, IGNORE_INDEX)
    position_ids = torch.arange(L, dtype=torch.long).unsqueeze(0).expand(B, L).contiguous()
    position_ids = position_ids * attention_mask  # padded positions -> 0 (ignored anyway)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "position_ids": position_ids}


def token_logprobs_of_labels(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of the supervised labels.

    Args:
        batch: output of :func:`collate` (tensors on the model's device).
    Returns:
        ``(logp, mask)``, both (B, L-1) float32: ``logp[b, t] = log p_θ(x_{t+1} | x_{≤t})``
        (fp32 log-softmax, nats), zero where ``mask`` is 0 (unsupervised or padding).
    """
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch.get("position_ids"), use_cache=False)
    logits = out.logits[:, :-1, :].float()
    targets = batch["labels"][:, 1:]
    mask = (targets != IGNORE_INDEX) & (batch["attention_mask"][:, 1:] == 1)
    safe_targets = targets.clamp(min=0)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)
    maskf = mask.to(logp.dtype)
    return logp * maskf, maskf


def sequence_log_likelihood(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence-summed log-likelihood of the supervised tokens, log π_θ(y|x).

    Used by NPO (Zhang et al., arXiv 2404.05868, §3 eq. 3: the policy/reference log-ratio is over
    the whole response y). Returns ``(loglik, n_tokens)``: (B,) float32 nats and (B,) float32
    counts of supervised tokens. Differentiable w.r.t. the model parameters.
    """
    logp, mask = token_logprobs_of_labels(model, batch)
    return logp.sum(-1), mask.sum(-1)


def per_example_nll(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean NLL per supervised token of each example, shape (B,), nats."""
    ll, n = sequence_log_likelihood(model, batch)
    return -ll / n.clamp(min=1)


def batch_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Token-averaged NLL over all supervised tokens of the batch (the standard causal-LM loss,
    nats/token) and the number of supervised tokens."""
    logp, mask = token_logprobs_of_labels(model, batch)
    n = int(mask.sum().item())
    return -logp.sum() / max(n, 1), n


@torch.no_grad()
def evaluate_nll(model, tokenizer, examples: Sequence[Example], batch_size: int = 32) -> float:
    """Mean NLL per supervised token over ``examples`` (nats), model in eval mode."""
    was_training = model.training
    model.eval()
    enc = encode_examples(tokenizer, examples)
    tot, n = 0.0, 0
    dev = next(model.parameters()).device
    for i in range(0, len(enc), batch_size):
        b = {k: v.to(dev) for k, v in collate(enc[i:i + batch_size], tokenizer.pad_token_id).items()}
        logp, mask = token_logprobs_of_labels(model, b)
        tot += -logp.sum().item()
        n += int(mask.sum().item())
    model.train(was_training)
    return tot / max(n, 1)


def make_optimizer_and_schedule(params: Iterable[torch.nn.Parameter], *, lr: float, total_steps: int,
                                warmup_ratio: float = 0.1, weight_decay: float = 0.0):
    """AdamW (β=(0.9, 0.95), ε=1e-8) with a linear warm-up over ``warmup_ratio·total_steps``
    steps then linear decay to 0 (the usual transformer schedule)."""
    opt = torch.optim.AdamW(list(params), lr=lr, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=weight_decay)
    warm = max(1, int(round(warmup_ratio * total_steps)))

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)


class ProgressReporter:
    """Builds :class:`Progress` objects (tokens/s over the whole run, linear ETA)."""

    def __init__(self, total: int, phase: str, callback: Callable[[Progress], None] | None):
        self.total, self.phase, self.callback = total, phase, callback
        self.t0 = time.perf_counter()
        self.tokens = 0

    def __call__(self, step: int, loss: float, tokens: int) -> None:
        self.tokens += tokens
        if self.callback is None:
            return
        el = time.perf_counter() - self.t0
        eta = el / step * (self.total - step) if step > 0 else float("nan")
        self.callback(Progress(step=step, total=self.total, loss=float(loss),
                               tokens_per_s=self.tokens / el if el > 0 else 0.0,
                               eta_seconds=float(eta), phase=self.phase))


def seed_everything(seed: int) -> torch.Generator:
    """Seed python/torch RNGs; return a dedicated CPU generator for data shuffling."""
    random.seed(seed)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def batches_for_epoch(n: int, batch_size: int, g: torch.Generator) -> list[list[int]]:
    """Shuffled index batches covering ``range(n)`` once (last batch may be smaller)."""
    perm = torch.randperm(n, generator=g).tolist()
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def train_causal_lm(model, tokenizer, examples: list[Example], *, epochs: int, lr: float,
                    batch_size: int, seed: int = 0, progress: Callable[[Progress], None] | None = None,
                    max_grad_norm: float = 1.0, warmup_ratio: float = 0.1,
                    weight_decay: float = 0.0, phase: str = "train") -> TrainStats:
    """Fine-tune ``model`` in place with the causal-LM loss on ``examples`` (non-private).

    Loss = mean NLL over the supervised tokens of each batch (nats/token). AdamW + linear
    warm-up/decay (:func:`make_optimizer_and_schedule`), global gradient-norm clipping at
    ``max_grad_norm``, fp32 on CPU, per-batch padding, shuffling seeded by ``seed``.
    Runs on the shared loop :func:`unlearning_engine.loop.run_loop`. The model is left in eval mode.

    Raises:
        ValueError: empty ``examples`` or non-positive epochs/lr/batch_size.
    """
    from .loop import LoopConfig, run_loop

    if not examples:
        raise ValueError("train_causal_lm: no examples")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
    enc = encode_examples(tokenizer, examples)

    def objective(m, b, _other, _state):
        loss, n = batch_nll(m, b)
        return loss, n, {}

    st = run_loop(model, tokenizer.pad_token_id, enc, None, objective,
                  LoopConfig(epochs=epochs, lr=lr, batch_size=batch_size,
                             max_grad_norm=max_grad_norm, warmup_ratio=warmup_ratio,
                             weight_decay=weight_decay, phase=phase),
                  seed=seed, progress=progress)
    return TrainStats(steps=st.steps, tokens=st.tokens, wall_seconds=st.wall_seconds,
                      final_loss=st.final_loss)
