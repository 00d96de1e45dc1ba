"""Batched greedy decoding with left padding.

Greedy decoding (argmax at every step) is the decoding used by MUSE (arXiv 2407.06460,
§3: VerbMem 128 new tokens, KnowMem 32 new tokens) and TOFU (arXiv 2401.06121, §2.5).
Batching uses **left** padding with the attention mask and position ids derived from it,
so every row is computed exactly as if it were generated alone (the unit tests check that
batched and one-at-a-time outputs are identical strings). Logits are read in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from ._common import encode, max_positions, model_device, pad_token_id

__all__ = [
    "KNOWMEM_STOP_STRINGS",
    "Generation",
    "cut_at_stop_strings",
    "greedy_generate",
    "greedy_generate_detailed",
]

#: Stop strings of MUSE's KnowMem evaluation (arXiv 2407.06460, §3 / its eval code).
KNOWMEM_STOP_STRINGS: tuple[str, ...] = ("\n\n", "\nQuestion", "Question:")


@dataclass(frozen=True)
class Generation:
    """One greedy continuation.

    Attributes:
        text: decoded continuation, special tokens skipped, cut before the first stop
            string (this is what :func:`greedy_generate` returns).
        token_ids: generated token ids up to (excluding) EOS; not cut at stop strings.
        stopped_by: ``"eos"``, ``"stop_string"`` or ``"length"``.
    """

    text: str
    token_ids: tuple[int, ...]
    stopped_by: str


def cut_at_stop_strings(text: str, stop_strings: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest occurrence of any stop string.

    Returns ``(cut_text, found)``. Empty stop strings are ignored.
    """
    cut = len(text)
    for s in stop_strings:
        if s:
            i = text.find(s)
            if i != -1 and i < cut:
                cut = i
    return text[:cut], cut != len(text)


class _StopWhenAllHaveStopString(StoppingCriteria):
    """Marks a row finished once its decoded continuation contains a stop string.

    A finished row is then padded by ``generate``; the text up to the first stop string is
    unaffected, so this only saves compute and never changes results.
    """

    def __init__(self, tokenizer, prompt_len: int, stop_strings: Sequence[str]):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.stop_strings = [s for s in stop_strings if s]

    def __call__(self, input_ids, scores, **kwargs):
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for i in range(input_ids.shape[0]):
            text = self.tokenizer.decode(input_ids[i, self.prompt_len :], skip_special_tokens=True)
            done[i] = any(s in text for s in self.stop_strings)
        return done


def _prompt_ids(tokenizer, prompts: Sequence[str], limit: int | None) -> list[list[int]]:
    out = []
    for p in prompts:
        if not isinstance(p, str):
            raise TypeError("prompts must be str")
        ids = encode(tokenizer, p)
        if not ids:
            raise ValueError(f"prompt {p!r} encodes to zero tokens; nothing to condition on")
        if limit is not None and len(ids) > limit:
            ids = ids[-limit:]  # keep the end of the prompt (left truncation)
        out.append(ids)
    return out


@torch.inference_mode()
def greedy_generate_detailed(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 16,
    stop_strings: Sequence[str] = (),
) -> list[Generation]:
    """Greedy continuations of ``prompts`` with details (see :class:`Generation`).

    Args:
        model: a ``transformers`` causal LM (any dtype; logits are compared in float32).
        tokenizer: its tokenizer; prompts are encoded with the tokenizer's default special
            tokens (e.g. BOS), exactly as for one prompt at a time.
        prompts: list of N strings; each must encode to at least one token.
        max_new_tokens: maximum generated tokens per prompt (> 0). Prompts longer than
            ``context length − max_new_tokens`` are truncated from the left.
        batch_size: prompts per forward batch (rows are sorted by length to limit padding;
            output order is the input order).
        stop_strings: the text is cut before the first occurrence of any of them
            (e.g. :data:`KNOWMEM_STOP_STRINGS`); generation of a row also ends at EOS.

    Returns a list of N :class:`Generation`. Raises ``ValueError`` on a bad
    ``max_new_tokens``/``batch_size`` or an empty prompt, ``TypeError`` on non-str prompts.
    """
    if max_new_tokens <= 0:
        raise ValueError("max_new_tokens must be > 0")
    if batch_size <= 0:
        raise ValueError("batch_size must be > 0")
    if not prompts:
        return []
    model.eval()
    device = model_device(model)
    ctx = max_positions(model)
    limit = None if ctx is None else max(1, ctx - max_new_tokens)
    all_ids = _prompt_ids(tokenizer, prompts, limit)
    pad_id = pad_token_id(tokenizer)
    eos_id = getattr(tokenizer, "eos_token_id", None)
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        min_new_tokens=0,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
    )
    order = sorted(range(len(all_ids)), key=lambda i: len(all_ids[i]))
    results: list[Generation | None] = [None] * len(all_ids)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = [all_ids[i] for i in idx]
        width = max(len(b) for b in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for r, ids in enumerate(batch):  # LEFT padding
            input_ids[r, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attn[r, width - len(ids) :] = 1
        criteria = StoppingCriteriaList()
        if any(stop_strings):
            criteria.append(_StopWhenAllHaveStopString(tokenizer, width, stop_strings))
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attn.to(device),
            generation_config=gen_cfg,
            stopping_criteria=criteria,
        )
        new = out[:, width:].tolist()
        for r, i in enumerate(idx):
            toks = new[r]
            stopped = "length"
            if eos_id is not None and eos_id in toks:
                toks = toks[: toks.index(eos_id)]
                stopped = "eos"
            raw = tokenizer.decode(toks, skip_special_tokens=True)
            text, found = cut_at_stop_strings(raw, stop_strings)
            if found:
                stopped = "stop_string"
            results[i] = Generation(text=text, token_ids=tuple(toks), stopped_by=stopped)
    return results  # type: ignore[return-value]


def greedy_generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int = 16,
    stop_strings: Sequence[str] = (),
) -> list[str]:
    """Greedy continuations (text only) of ``prompts``; left padding, batched.

    Same arguments, errors and guarantees as :func:`greedy_generate_detailed`
    (MUSE arXiv 2407.06460 §3 greedy decoding); returns N strings (continuations only,
    without the prompt, cut before the first stop string and at EOS).
    """
    return [
        g.text
        for g in greedy_generate_detailed(
            model,
            tokenizer,
            prompts,
            max_new_tokens,
            batch_size=batch_size,
            stop_strings=stop_strings,
        )
    ]
