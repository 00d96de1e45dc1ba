"""Per-token log-probabilities and membership-inference scores.

Sources:
- Min-K% Prob: Shi et al., "Detecting Pretraining Data from Large Language Models",
  arXiv 2310.16789, §3 (score = mean log-prob of the k% least likely tokens); used with
  k = 40% by MUSE (arXiv 2407.06460, §3 "PrivLeak").
- Min-K%++: Zhang et al., arXiv 2404.02936, §3 (token score (log p − μ)/σ with μ, σ the
  mean and standard deviation of log p over the vocabulary under the model's own
  next-token distribution).
- Loss and zlib attacks: Carlini et al., "Extracting Training Data from Large Language
  Models", USENIX Security 2021, §5 (zlib score = loss / zlib-compressed length), as in
  MUSE's MIA baselines.

Orientation used throughout this package (MUSE): **lower score = more likely a member**
(scores are negated log-likelihood-like quantities).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._common import max_positions, model_device, pad_token_id

__all__ = [
    "TextScores",
    "token_logprobs",
    "token_statistics",
    "min_k_score",
    "min_k_plus_plus_score",
    "loss_score",
    "zlib_score",
]


@dataclass(frozen=True)
class TextScores:
    """Per-token statistics of one text (all arrays have shape ``(n,)``, float64).

    Attributes:
        logprobs: log p(x_i | x_<i) in nats (fp32 log-softmax) of every scored token.
        mu: E_{z~p(·|x_<i)}[log p(z | x_<i)] at the same positions (Min-K%++).
        sigma: standard deviation of log p(z | x_<i) under p(·|x_<i).
    """

    logprobs: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray


def _encode_for_scoring(tokenizer, text: str, limit: int | None) -> tuple[list[int], list[int]]:
    enc = tokenizer(text, add_special_tokens=True, return_special_tokens_mask=True)
    ids = list(enc["input_ids"])
    special = list(enc.get("special_tokens_mask") or [0] * len(ids))
    if limit is not None and len(ids) > limit:
        ids, special = ids[:limit], special[:limit]
    return ids, special


@torch.inference_mode()
def token_statistics(
    model, tokenizer, texts: Sequence[str], batch_size: int = 16
) -> list[TextScores]:
    """Per-token log-probabilities (and Min-K%++ moments) of ``texts``; batched.

    Scored tokens: every token with a left context, i.e. positions 1…L−1 of the tokenized
    sequence, minus the special tokens the tokenizer itself inserts (BOS/EOS). So with a
    tokenizer that prepends BOS every real token is scored; without BOS, tokens 2…n
    (DESIGN §7, MUSE arXiv 2407.06460 §3 / Min-K% arXiv 2310.16789 §3). Texts are encoded
    with the tokenizer's defaults and truncated (keeping the start) to the model's context.

    Batches are right-padded; padding is excluded through the attention mask, never by
    token id, and log-softmax is taken on float32 logits, so batched results equal
    one-at-a-time results up to float rounding (tested to 1e-5).

    Returns N :class:`TextScores` (an empty text, or one with a single token and no BOS,
    gives empty arrays). Raises ``ValueError`` if ``batch_size <= 0``.
    """
    if batch_size <= 0:
        raise ValueError("batch_size must be > 0")
    if not texts:
        return []
    model.eval()
    device = model_device(model)
    limit = max_positions(model)
    encoded = [_encode_for_scoring(tokenizer, t, limit) for t in texts]
    pad_id = pad_token_id(tokenizer)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out: list[TextScores | None] = [None] * len(encoded)
    empty = TextScores(np.zeros(0), np.zeros(0), np.zeros(0))
    for start in range(0, len(order), batch_size):
        idx = [i for i in order[start : start + batch_size] if len(encoded[i][0]) >= 2]
        for i in order[start : start + batch_size]:
            if len(encoded[i][0]) < 2:
                out[i] = empty
        if not idx:
            continue
        width = max(len(encoded[i][0]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):  # right padding: real tokens keep positions 0..L-1
            ids = encoded[i][0]
            input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attn[r, : len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attn.to(device)).logits
        logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)  # predicts tokens 1..W-1
        target = input_ids[:, 1:].to(device)
        tok_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        p = logp.exp()
        mu = (p * logp).sum(-1)
        var = (p * logp.square()).sum(-1) - mu.square()
        sigma = var.clamp_min(0).sqrt()
        tok_lp, mu, sigma = (x.double().cpu().numpy() for x in (tok_lp, mu, sigma))
        mask = attn[:, 1:].numpy().astype(bool)
        for r, i in enumerate(idx):
            special = np.asarray(encoded[i][1][1:], dtype=bool)
            sel = mask[r, : len(special)] & ~special
            keep = np.zeros(mask.shape[1], dtype=bool)
            keep[: len(sel)] = sel
            keep &= mask[r]
            out[i] = TextScores(tok_lp[r][keep].copy(), mu[r][keep].copy(), sigma[r][keep].copy())
    return out  # type: ignore[return-value]


def token_logprobs(model, tokenizer, texts: list[str], batch_size: int = 16) -> list[np.ndarray]:
    """Log-probabilities (nats, float64 arrays of shape ``(n_i,)``) of every scored token
    of each text; see :func:`token_statistics` for which tokens are scored, padding and
    precision. Source: Min-K% arXiv 2310.16789 §3; MUSE arXiv 2407.06460 §3."""
    return [s.logprobs for s in token_statistics(model, tokenizer, texts, batch_size=batch_size)]


def _lowest_k(values: np.ndarray, k: float) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if not 0.0 < k <= 1.0:
        raise ValueError("k must be in (0, 1]")
    n = values.size
    if n == 0:
        raise ValueError("no scored tokens: the text is empty or has a single token and no BOS")
    if not np.all(np.isfinite(values)):
        raise ValueError("token values must be finite")
    m = max(1, math.floor(k * n))
    return np.sort(values)[:m]


def min_k_score(logprobs: np.ndarray, k: float = 0.4) -> float:
    """Min-K% Prob score s = −mean of the lowest ``max(1, ⌊k·n⌋)`` token log-probs.

    Source: Shi et al. arXiv 2310.16789 §3 (Min-K% Prob), k = 0.4 as in MUSE
    arXiv 2407.06460 §3. **Deviation** (DESIGN §7): the ``max(1, ·)`` guard, so a text
    with fewer than 1/k tokens keeps its lowest token instead of giving NaN.

    Args: ``logprobs`` shape ``(n,)``, nats; ``k`` in (0, 1].
    Returns a float ≥ 0 (for log-probs ≤ 0); lower = more likely a training member.
    Raises ``ValueError`` for an empty array, non-finite values or k outside (0, 1].

    Example: [-1, -2, -3, -4, -5], k=0.4 → keep ⌊2.0⌋ = 2 lowest {-5, -4} → 4.5.
    """
    return float(-_lowest_k(logprobs, k).mean())


def min_k_plus_plus_score(scores: TextScores, k: float = 0.4) -> float:
    """Min-K%++ score, negated: −mean of the lowest ``max(1, ⌊k·n⌋)`` values of
    (log p(x_i) − μ_i)/σ_i (Zhang et al. arXiv 2404.02936 §3; σ_i is clipped below at
    1e-6 to avoid division by zero). Lower = more likely a member (MUSE orientation).
    Raises ``ValueError`` like :func:`min_k_score`."""
    z = (scores.logprobs - scores.mu) / np.maximum(scores.sigma, 1e-6)
    return float(-_lowest_k(z, k).mean())


def loss_score(logprobs: np.ndarray) -> float:
    """Loss attack score: mean negative log-likelihood per scored token, nats
    (Carlini et al. USENIX Sec. 2021 §5; MUSE arXiv 2407.06460 §3 baselines).
    Lower = more likely a member. Raises ``ValueError`` if ``logprobs`` is empty."""
    lp = np.asarray(logprobs, dtype=np.float64).ravel()
    if lp.size == 0:
        raise ValueError("no scored tokens")
    return float(-lp.mean())


def zlib_score(logprobs: np.ndarray, text: str) -> float:
    """zlib attack score: loss / len(zlib.compress(text as UTF-8)) in nats per byte
    (Carlini et al. USENIX Sec. 2021 §5, "zlib" ratio; MUSE baselines).
    Lower = more likely a member. Raises ``ValueError`` if ``logprobs`` is empty."""
    return loss_score(logprobs) / len(zlib.compress(text.encode("utf-8")))
