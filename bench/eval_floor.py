"""An evaluation floor measured independently of the project's evaluation code (issue 22 item 3).

Used by ``bench/eval_efficiency.py`` in the same run as the evaluation it is compared with:

- generation parts: a fresh ``AutoModelForCausalLM`` loaded with PyTorch SDPA attention, plain
  ``model.generate`` (greedy, KV cache, left padding by the tokenizer, ``max_new_tokens`` of the
  part, EOS ends a row) at each candidate batch size; the best batch size is the floor;
- scoring parts: one ``no_grad`` forward pass per text (right padding) at each candidate batch
  size, nothing computed from the logits; the best batch size is the floor;
- FLOP bound: 2·N·tokens / the measured fp32 matmul peak (N = parameters, tokens = every token
  a forward pass processes: prompt + generated tokens, or the text's tokens; Kaplan et al.,
  arXiv 2001.08361 §2.1, forward cost ≈ 2N per token, attention left out).
- straightforward batch-1 baseline: the same plain calls at batch size 1 (what a first
  implementation does), plus a full fp32 log-softmax per scored text.

No project code is used here except to find the files.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import torch


def matmul_peak_flops(n: int = 1024, repeats: int = 8) -> float:
    """Measured fp32 matmul throughput (FLOP/s) of this machine: best of ``repeats`` n×n×n."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


def load_plain(model_dir: str):
    """(model, tokenizer) straight from transformers: fp32, SDPA, eval, left-padding tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True,
                                                 dtype=torch.float32,
                                                 attn_implementation="sdpa").eval()
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


@torch.inference_mode()
def generate_seconds(model, tok, prompts: Sequence[str], max_new: int, bs: int) -> tuple[float, int]:
    """(seconds, tokens processed) of plain greedy ``generate`` over ``prompts`` at batch ``bs``."""
    tok.padding_side = "left"
    order = sorted(prompts, key=len)
    secs, tokens = 0.0, 0
    for a in range(0, len(order), bs):
        enc = tok(list(order[a:a + bs]), return_tensors="pt", padding=True)
        t = time.perf_counter()
        out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, num_beams=1,
                             use_cache=True, pad_token_id=tok.pad_token_id)
        secs += time.perf_counter() - t
        tokens += int(enc["attention_mask"].sum()) + (out.shape[1] - enc["input_ids"].shape[1]) * len(
            order[a:a + bs])
    return secs, tokens


@torch.inference_mode()
def forward_seconds(model, tok, texts: Sequence[str], bs: int, log_softmax: bool = False
                    ) -> tuple[float, int]:
    """(seconds, tokens) of one forward pass per text at batch ``bs`` (right padding); with
    ``log_softmax`` also a full fp32 log-softmax (the straightforward scorer)."""
    tok.padding_side = "right"
    order = sorted(texts, key=len)
    secs, tokens = 0.0, 0
    for a in range(0, len(order), bs):
        enc = tok(list(order[a:a + bs]), return_tensors="pt", padding=True, truncation=True,
                  max_length=getattr(model.config, "max_position_embeddings", None))
        t = time.perf_counter()
        logits = model(**enc).logits
        if log_softmax:
            torch.log_softmax(logits.float(), dim=-1)
        secs += time.perf_counter() - t
        tokens += int(enc["attention_mask"].sum())
    return secs, tokens


def independent_floor(model_dir: str, gen_parts: dict, score_parts: dict,
                      batch_sizes: Sequence[int] = (1, 8)) -> dict:
    """Floor and batch-1 baseline of every part.

    Args:
        gen_parts: ``{name: (prompts, max_new_tokens)}``; score_parts: ``{name: texts}``.
    Returns ``{"parts": {name: {"floor_s", "best_batch", "by_batch": {bs: s}, "tokens",
    "flop_bound_s", "batch1_s"}}, "peak_flops", "params"}`` (seconds, FLOP/s).
    """
    model, tok = load_plain(model_dir)
    n_params = sum(p.numel() for p in model.parameters())
    peak = matmul_peak_flops()
    parts: dict[str, dict] = {}
    for name, (prompts, max_new) in gen_parts.items():
        by = {bs: generate_seconds(model, tok, prompts, max_new, bs) for bs in batch_sizes}
        best = min(by, key=lambda b: by[b][0])
        b1 = by[1][0] if 1 in by else generate_seconds(model, tok, prompts, max_new, 1)[0]
        tokens = by[best][1]
        parts[name] = {"floor_s": by[best][0], "best_batch": best,
                       "by_batch": {b: v[0] for b, v in by.items()}, "tokens": tokens,
                       "flop_bound_s": 2.0 * n_params * tokens / peak, "batch1_s": b1}
    for name, texts in score_parts.items():
        by = {bs: forward_seconds(model, tok, texts, bs) for bs in batch_sizes}
        best = min(by, key=lambda b: by[b][0])
        tokens = by[best][1]
        parts[name] = {"floor_s": by[best][0], "best_batch": best,
                       "by_batch": {b: v[0] for b, v in by.items()}, "tokens": tokens,
                       "flop_bound_s": 2.0 * n_params * tokens / peak,
                       "batch1_s": forward_seconds(model, tok, texts, 1, log_softmax=True)[0]}
    del model
    return {"parts": parts, "peak_flops": peak, "params": n_params}
