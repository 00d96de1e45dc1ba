"""Per-token log-probabilities and membership-inference scores.

Sources:
- Min-K% Prob: Shi et al., "Detecting Pretraining Data from Large Language Models",
  arXiv 2310.16789, §3 (score = mean log-prob of the k% least likely tokens); used with
  k = 40% by MUSE (arXiv 2407.06460, §3 "PrivLeak").
- Min-K%++: Zhang et al., arXiv 2404.02936, §3 (token score (log p − μ)/σ with μ, σ the
  mean and standard deviation of log p over the vocabulary under the model's own
  next-token distribution).
- Loss, zlib and lower-case attacks: Carlini et al., "Extracting Training Data from Large
  Language Models", USENIX Security 2021, §5 (zlib score = loss / zlib-compressed length;
  "Lowercase" = perplexity ratio of the text and its lower-cased copy), as in MUSE's MIA
  baselines (``PPL``, ``PPL/zlib``, ``PPL/lower``).

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
    "lowercase_score",
]


@dataclass(frozen=True)
class TextScores:
    """Per-token statistics of one text (all arrays have shape ``(n,)``, float64).

    Attributes:
        logprobs: log p(x_i | x_<i) in nats (fp32 log-softmax) of every scored token.
        mu: E_{z~p(·|x_<i)}[log p(z | x_<i)] at the same positions (Min-K%++); NaN when
            computed with ``moments=False``.
        sigma: standard deviation of log p(z | x_<i) under p(·|x_<i); NaN likewise.
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


#: Scored positions per chunk of the vocabulary-sized fp32 work (bounds its memory to
#: ``_CHUNK × V × 4`` bytes per temporary, e.g. 200 MB for V = 49 152).
_CHUNK = 1024


def _position_statistics(logits_of, n: int, target: torch.Tensor,
                         moments: bool) -> tuple[torch.Tensor, torch.Tensor | None,
                                                 torch.Tensor | None]:
    """Per-position statistics for ``n`` scored positions; ``logits_of(a, b)`` gives the
    (b − a, V) logits of positions a…b−1 and ``target`` (n,) their next-token ids.

    log p(target) = logit[target] − logsumexp(logits) (fp32), i.e. log-softmax evaluated at
    the target only. With ``moments``: μ = E_p[log p] = E_p[logit] − logsumexp and
    σ² = Var_p[log p] = Var_p[logit] (log p and the logit differ by a constant per position).
    Returns float32 tensors of shape (n,) (μ, σ None without moments).
    """
    lp, mus, sigmas = [], [], []
    for a in range(0, n, _CHUNK):
        x = logits_of(a, min(n, a + _CHUNK)).float()
        lse = torch.logsumexp(x, dim=-1)
        lp.append(x.gather(-1, target[a:a + _CHUNK].unsqueeze(-1)).squeeze(-1) - lse)
        if moments:
            p = torch.softmax(x, dim=-1)
            m1 = (p * x).sum(-1)
            var = (p * (x - m1.unsqueeze(-1)).square()).sum(-1)
            mus.append(m1 - lse)
            sigmas.append(var.clamp_min(0).sqrt())
    cat = torch.cat
    return cat(lp), (cat(mus) if moments else None), (cat(sigmas) if moments else None)


def _decoder_and_head(model):
    """``(decoder, lm_head)`` when the logits are exactly ``lm_head(decoder(...)[0])`` (Llama,
    GPT-2 and other plain ``*ForCausalLM`` models without hooks on the top-level module), so that
    the (B, W, V) logits tensor need never exist; ``None`` otherwise (the model's own logits are
    used: a hooked model such as an ECO guard must see the whole call)."""
    base = getattr(model, "base_model", None)
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    cfg = getattr(model, "config", None)
    if base is None or base is model or not isinstance(head, torch.nn.Linear):
        return None
    if model._forward_hooks or model._forward_pre_hooks:  # e.g. ECO's prompt classifier
        return None
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    if type(model).__name__ not in ("LlamaForCausalLM", "GPT2LMHeadModel", "MistralForCausalLM",
                                    "Qwen2ForCausalLM"):
        return None
    return base, head


@torch.inference_mode()
def token_statistics(
    model, tokenizer, texts: Sequence[str], batch_size: int = 16, *, moments: bool = True
) -> list[TextScores]:
    """Per-token log-probabilities (and Min-K%++ moments) of ``texts``; batched.

    Scored tokens: every token with a left context, i.e. positions 1…L−1 of the tokenized
    sequence, minus the special tokens the tokenizer itself inserts (BOS/EOS). So with a
    tokenizer that prepends BOS every real token is scored; without BOS, tokens 2…n
    (DESIGN §7, MUSE arXiv 2407.06460 §3 / Min-K% arXiv 2310.16789 §3). Texts are encoded
    with the tokenizer's defaults and truncated (keeping the start) to the model's context.

    Texts are sorted by length and batched (little padding); batches are right-padded and
    padding is excluded through the attention mask, never by token id. The vocabulary-sized
    work is done only at scored positions, in fp32, in chunks of :data:`_CHUNK` positions:
    log p = logit[target] − logsumexp(logits) (no full log-softmax tensor); for plain Llama /
    GPT-2-style models the output head itself is applied per chunk to the decoder's hidden
    states, so the (B, W, V) logits tensor (3.2 GB for 8 × 2048 tokens of SmolLM2) never exists. Batched results
    equal one-at-a-time results up to float rounding: ≤ 1e-4 nats per token on a tiny fp32
    model at batch 8 (``test_scoring.py::test_batch8_bound_*``; padded matmuls change the
    summation order, and about 5e-5 was observed on SmolLM2-135M).

    ``moments=False`` skips μ, σ (Min-K%++ only) and fills them with NaN.

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
    empty = TextScores(np.zeros(0), np.zeros(0), np.zeros(0))
    out: list[TextScores | None] = [empty if len(e[0]) < 2 else None for e in encoded]
    split = _decoder_and_head(model)
    order = sorted((i for i in range(len(encoded)) if out[i] is None),
                   key=lambda i: len(encoded[i][0]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i][0]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        keep = torch.zeros((len(idx), width - 1), dtype=torch.bool)
        for r, i in enumerate(idx):  # right padding: real tokens keep positions 0..L-1
            ids, special = encoded[i]
            input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attn[r, : len(ids)] = 1
            keep[r, : len(ids) - 1] = ~torch.tensor(special[1:], dtype=torch.bool)
        keep_d = keep.to(device)
        target = input_ids[:, 1:].to(device)[keep_d]
        # position t predicts token t+1; only scored positions enter the vocabulary-sized work
        if split is not None:  # logits of scored positions only, chunk by chunk
            base, head = split
            hidden = base(input_ids=input_ids.to(device), attention_mask=attn.to(device))[0]
            h = hidden[:, :-1][keep_d]
            lp, mu, sigma = _position_statistics(lambda a, b, h=h, head=head: head(h[a:b]),
                                                 h.shape[0], target, moments)
        else:
            logits = model(input_ids=input_ids.to(device), attention_mask=attn.to(device)).logits
            scored = logits[:, :-1][keep_d]
            lp, mu, sigma = _position_statistics(lambda a, b, x=scored: x[a:b],
                                                 scored.shape[0], target, moments)
        lp = lp.double().cpu().numpy()
        if moments:
            mu, sigma = mu.double().cpu().numpy(), sigma.double().cpu().numpy()
        counts = keep.sum(1).tolist()
        a = 0
        for r, i in enumerate(idx):
            b = a + counts[r]
            nan = np.full(b - a, np.nan)
            out[i] = TextScores(lp[a:b].copy(), mu[a:b].copy() if moments else nan,
                                sigma[a:b].copy() if moments else nan.copy())
            a = b
    return out  # type: ignore[return-value]


def token_logprobs(model, tokenizer, texts: list[str], batch_size: int = 16) -> list[np.ndarray]:
    """Log-probabilities (nats, float64 arrays of shape ``(n_i,)``) of every scored token
    of each text; see :func:`token_statistics` for which tokens are scored, padding and
    precision. Source: Min-K% arXiv 2310.16789 §3; MUSE arXiv 2407.06460 §3."""
    return [s.logprobs for s in token_statistics(model, tokenizer, texts, batch_size=batch_size,
                                                 moments=False)]


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


def lowercase_score(logprobs: np.ndarray, logprobs_lower: np.ndarray) -> float:
    """Lower-case attack score (MUSE's ``PPL/lower``): loss(text) / loss(text.lower()), the
    ratio of the mean NLLs per scored token of the text and of its lower-cased copy (equal to
    the ratio of log-perplexities; Carlini et al. USENIX Sec. 2021 §5 "Lowercase"; MUSE
    arXiv 2407.06460 §3 baselines). Lower = more likely a member (memorisation lowers the
    text's own loss, not that of its lower-cased copy).

    Example: log-probs [-1, -3] (loss 2) and lower-cased [-4, -4] (loss 4) → 0.5.
    Raises ``ValueError`` if an array is empty or the lower-cased loss is 0.
    """
    lower = loss_score(logprobs_lower)
    if lower == 0.0:
        raise ValueError("lower-cased text has zero loss: the ratio is undefined")
    return loss_score(logprobs) / lower
