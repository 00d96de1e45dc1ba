"""Small shared helpers for the evaluation package (not public API)."""

from __future__ import annotations

import torch


def model_device(model) -> torch.device:
    """Device of the model's first parameter (CPU for a parameter-less model)."""
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


def pad_token_id(tokenizer) -> int:
    """Id used for padding: the pad token, else EOS, else 0 (padding is always masked)."""
    for tid in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if tid is not None:
            return int(tid)
    return 0


def max_positions(model) -> int | None:
    """The model's context length if its config states one."""
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def encode(tokenizer, text: str, add_special_tokens: bool = True) -> list[int]:
    """Token ids of ``text`` as the tokenizer produces them by default (with its special
    tokens, e.g. BOS, when ``add_special_tokens``)."""
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
