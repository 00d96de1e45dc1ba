"""Collapse detection after unlearning (DESIGN §5: "Collapse (repetition, empty outputs, retain
utility collapse) is detected and fails the job rather than being certified").

A snapshot of the model's behaviour on the retain set is taken before and after unlearning:
- greedy continuations (``max_new_tokens``) of the prompts of the first ``n_prompts`` retain
  records (QA: ``"Question: q\\nAnswer: "``; plain text: its first 8 tokens);
- the mean NLL per supervised token on the first ``n_nll`` retain records.

The unlearned model is *collapsed* when (each rule relative to the model it started from, so
that a weak original does not trip the check):
- **repetition**: at least ``bad_fraction`` of the continuations (and more than before) have ≥
  ``min_tokens`` tokens of which one single token makes up ≥ ``repeat_share``;
- **empty outputs**: at least ``bad_fraction`` of the continuations (and more than before) decode
  to whitespace only (e.g. EOS at once);
- **retain NLL blow-up**: NLL_after > ``nll_factor`` × NLL_before and NLL_after − NLL_before >
  ``nll_margin`` nats, or NLL_after is not finite.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

import torch

from .data import Example, format_prompt
from .errors import CollapseError
from .loop import model_device, nll_of_encoded
from .training import encode_examples


@dataclass
class CollapseConfig:
    nll_factor: float = 3.0
    nll_margin: float = 1.0
    repeat_share: float = 0.5
    min_tokens: int = 8
    bad_fraction: float = 0.5
    max_new_tokens: int = 24
    n_prompts: int = 4
    n_nll: int = 32


def _prompt_ids(tok, ex: Example) -> list[int]:
    if ex.is_qa:
        ids = list(tok(format_prompt(ex))["input_ids"])
    else:
        ids = list(tok(ex.text)["input_ids"])[:8]
    if not ids or ids[0] != tok.bos_token_id:
        ids = [tok.bos_token_id] + ids
    return ids


@torch.no_grad()
def greedy_continuation(model, ids: list[int], max_new_tokens: int, eos_id: int) -> list[int]:
    """Greedy decoding with the KV cache (a light loop instead of ``generate``, whose per-step
    overhead dominates on small models); stops at EOS (not included)."""
    dev = model_device(model)
    out = model(input_ids=torch.tensor([ids], device=dev), use_cache=True)
    gen: list[int] = []
    for _ in range(max_new_tokens):
        nxt = int(out.logits[0, -1].argmax())
        if nxt == eos_id:
            break
        gen.append(nxt)
        out = model(input_ids=torch.tensor([[nxt]], device=dev), use_cache=True,
                    **{CACHE_KWARG: _cache_of(out)})
    return gen


def _cache_kwarg() -> str:
    import inspect

    from transformers import LlamaForCausalLM
    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters \
        else "past_key_values"


#: transformers ≥ 5.2x names the KV cache argument ``cache`` (``past_key_values`` before).
CACHE_KWARG = _cache_kwarg()


def _cache_of(out):
    c = getattr(out, "cache", None)
    return c if c is not None else out.past_key_values


@torch.no_grad()
def greedy_batch(model, prompts: list[list[int]], max_new_tokens: int, eos_id: int,
                 pad_id: int) -> list[list[int]]:
    """Greedy continuations of several prompts at once (left padding, explicit positions, KV
    cache); each stops at its first EOS (not included). Same tokens as
    :func:`greedy_continuation` per prompt up to floating-point ties."""
    if not prompts:
        return []
    dev = model_device(model)
    B, L = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.tensor(p)
        mask[i, L - len(p):] = 1
    ids, mask = ids.to(dev), mask.to(dev)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
    gens: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    last = pos[:, -1]
    for _ in range(max_new_tokens):
        nxt = out.logits[:, -1].argmax(-1)
        for i, t in enumerate(nxt.tolist()):
            if not done[i]:
                if t == eos_id:
                    done[i] = True
                else:
                    gens[i].append(t)
        if all(done):
            break
        mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=dev)], dim=1)
        last = last + 1
        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last[:, None],
                    use_cache=True, **{CACHE_KWARG: _cache_of(out)})
    return gens


@torch.no_grad()
def generation_stats(model, tok, prompts: list[list[int]], cfg: CollapseConfig) -> dict:
    """Greedy continuations of ``prompts`` (token id lists): counts of repetitive and empty ones."""
    was = model.training
    model.eval()
    rep, empty, samples = 0, 0, []
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for gen in greedy_batch(model, prompts, cfg.max_new_tokens, tok.eos_token_id, pad):
        text = tok.decode(gen, skip_special_tokens=True)
        top_tok, top_n = Counter(gen).most_common(1)[0] if gen else (None, 0)
        is_rep = len(gen) >= cfg.min_tokens and top_n / len(gen) >= cfg.repeat_share
        is_empty = not text.strip()
        rep += is_rep
        empty += is_empty
        samples.append({"text": text[:80], "repetitive": bool(is_rep), "empty": bool(is_empty),
                        "top_token": tok.convert_ids_to_tokens(top_tok) if top_tok is not None else None})
    model.train(was)
    n = max(len(prompts), 1)
    return {"n": len(prompts), "repetitive_fraction": rep / n, "empty_fraction": empty / n,
            "samples": samples}


def snapshot(model, tok, retain: list[Example], cfg: CollapseConfig | None = None) -> dict:
    """Behaviour snapshot on the retain set (see module docstring); ``{}`` without retain data."""
    cfg = cfg or CollapseConfig()
    if not retain:
        return {}
    prompts = [_prompt_ids(tok, ex) for ex in retain[:cfg.n_prompts]]
    enc = encode_examples(tok, retain[:cfg.n_nll],
                          max_length=getattr(model.config, "max_position_embeddings", None))
    out = generation_stats(model, tok, prompts, cfg)
    out["retain_nll"] = nll_of_encoded(model, enc, tok.pad_token_id)
    return out


def collapse_reasons(before: dict, after: dict, cfg: CollapseConfig | None = None) -> list[str]:
    """Reasons (empty list: no collapse) comparing two :func:`snapshot` results."""
    cfg = cfg or CollapseConfig()
    if not before or not after:
        return []
    reasons = []
    nb, na = before["retain_nll"], after["retain_nll"]
    if not math.isfinite(na):
        reasons.append(f"retain NLL is not finite ({na})")
    elif na > cfg.nll_factor * nb and na - nb > cfg.nll_margin:
        reasons.append(f"retain NLL blew up from {nb:.3f} to {na:.3f} nats/token "
                       f"(x{na / max(nb, 1e-12):.1f} > x{cfg.nll_factor:g})")
    rb, ra = before["repetitive_fraction"], after["repetitive_fraction"]
    if ra >= cfg.bad_fraction and ra > rb:
        toks = sorted({s["top_token"] for s in after["samples"] if s["repetitive"]})
        reasons.append(f"repetition: {ra:.0%} of greedy retain continuations are dominated by one "
                       f"repeated token {toks} (before: {rb:.0%})")
    eb, ea = before["empty_fraction"], after["empty_fraction"]
    if ea >= cfg.bad_fraction and ea > eb:
        reasons.append(f"empty outputs: {ea:.0%} of greedy retain continuations are empty "
                       f"(before: {eb:.0%})")
    return reasons


def check_collapse(before: dict, after: dict, cfg: CollapseConfig | None = None) -> dict:
    """Raise :class:`CollapseError` if :func:`collapse_reasons` finds any; else return a small
    JSON-serialisable summary for the result details."""
    cfg = cfg or CollapseConfig()
    reasons = collapse_reasons(before, after, cfg)
    summary = {k: {kk: before.get(kk) if k == "before" else after.get(kk)
                   for kk in ("retain_nll", "repetitive_fraction", "empty_fraction")}
               for k in ("before", "after")} if before and after else {"skipped": "no retain data"}
    if reasons:
        raise CollapseError("; ".join(reasons), {**summary, "config": asdict(cfg)})
    return summary
