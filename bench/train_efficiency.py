"""Training efficiency against the hardware limit of the same machine (issue 8 item 3).

For a model (``tiny`` = the demo model, 1.38M parameters; ``smollm2`` = SmolLM2-135M-Instruct)
and a fixed batch of real TOFU records, times training steps in four set-ups — full-parameter
and LoRA (peft), each without and with DP-SGD (opacus per-sample gradients, clipping, noise) —
and compares the achieved FLOP/s with the machine's matmul peak measured in the same run with
``torch.matmul`` on the model's own shapes.

FLOP model (Kaplan et al. arXiv 2001.08361 §2.1; Hoffmann et al. arXiv 2203.15556 App. F):
a training token costs ≈ 6·N FLOPs with N = the weights that enter a matmul (every
``nn.Linear`` incl. the output head; the input embedding is a lookup): 2N forward, 2N for the
input gradients, 2N for the weight gradients. With LoRA the frozen weights need no weight
gradient, so ≈ 4·N (the adapters' own cost, < 2 % of N at r = 16, is left out). DP-SGD does the
same arithmetic (per-sample gradients are the weight gradient split by example), so it is
counted as 6·N / 4·N too and its overhead shows as a lower fraction of peak. The attention
score FLOPs (≈ 12·layers·seq·d per token, < 5 % at these lengths) are left out, so the
fractions are slight underestimates. Tokens = the non-padding input tokens of the batch.

Matmul peak: fp32 ``torch.matmul`` of (B·L, d) × (d, d_ff), (B·L, d_ff) × (d_ff, d),
(B·L, d) × (d, d) and (B·L, d) × (d, V) — the model's projection and head shapes at the
batch's token count — best of ``--matmul-repeats``; "peak" is the fastest of the shapes and
"model-mix" the FLOP-weighted rate of one pass over all of them.

    python bench/train_efficiency.py --model tiny --model smollm2 --steps 5

Writes ``OUT/train_efficiency.json`` and ``.png`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import environment, pyplot, set_threads  # noqa: E402
from evaluation.datafiles import default_data_dir  # noqa: E402

TOFU = default_data_dir("tofu") / "full.json"
CONFIGS = ("full", "lora", "dp-full", "dp-lora")
LORA = {"r": 16, "alpha": 32.0}


def load_records(n: int):
    """The first ``n`` TOFU QA records."""
    from evaluation.runners import _load_rows
    from unlearning_engine.data import Example
    rows = _load_rows(Path(TOFU))
    return [Example(question=r["question"], answer=r["answer"], record_id=f"tofu{i}")
            for i, r in enumerate(rows[:n])]


def build(model_name: str, records):
    """(model, tokenizer) on CPU, fp32."""
    from unlearning_engine.data import format_example
    from unlearning_engine.modeling import build_model, load_smollm2, train_tokenizer

    if model_name == "smollm2":
        return load_smollm2()
    tok = train_tokenizer([format_example(e) for e in records], vocab_size=2048)
    return build_model(tok, "tiny", seed=0), tok


def matmul_params(model) -> int:
    """Weights entering a matmul: every ``nn.Linear`` (the output head included)."""
    import torch
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def _sync(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(d: int, d_ff: int, vocab: int, tokens: int, repeats: int, device: str = "cpu",
                dtype: str = "fp32") -> dict:
    """Matmul throughput (FLOP/s) on the model's shapes at ``tokens`` rows (fp32, or bf16 on
    CUDA with ``dtype="bf16"``)."""
    import torch

    dt = torch.bfloat16 if dtype == "bf16" else torch.float32

    shapes = {"d×d_ff": (tokens, d, d_ff), "d_ff×d": (tokens, d_ff, d), "d×d": (tokens, d, d),
              "d×V": (tokens, d, vocab)}
    rates, total_flops, total_t = {}, 0.0, 0.0
    for name, (m, k, n) in shapes.items():
        a = torch.randn(m, k, device=device, dtype=dt)
        b = torch.randn(k, n, device=device, dtype=dt)
        torch.matmul(a, b)
        _sync(device)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            torch.matmul(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - t)
        flops = 2.0 * m * k * n
        rates[name] = flops / best
        total_flops += flops
        total_t += best
    return {"shapes": {k: list(v) for k, v in shapes.items()}, "rates": rates,
            "peak": max(rates.values()), "model_mix": total_flops / total_t}


def _batch(model, tok, records, batch_size):
    from unlearning_engine.training import collate, encode_examples
    enc = encode_examples(tok, records[:batch_size])
    return collate(enc, tok.pad_token_id)


def time_config(config: str, model_name: str, records, batch_size: int, steps: int,
                warmup: int, device: str = "cpu", dtype: str = "fp32") -> dict:
    """Median step time of one set-up on a fresh copy of the model (``dtype="bf16"``: bf16
    autocast on CUDA, never for DP-SGD, whose clipping and noise stay in fp32)."""
    import contextlib

    import torch

    from unlearning_engine.training import per_example_nll

    model, tok = build(model_name, records)
    n_matmul = matmul_params(model)
    model = model.to(device)
    batch = {k: v.to(device) for k, v in _batch(model, tok, records, batch_size).items()}
    tokens = int(batch["attention_mask"].sum())
    lora = config.endswith("lora")
    dp = config.startswith("dp")
    if lora:
        from unlearning_engine.hparams import v_lora
        from unlearning_engine.lora import wrap_lora
        model = wrap_lora(model, v_lora("lora", LORA))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    if dp:
        if model_name == "smollm2" and not lora:
            return {"config": config, "status": "skipped: full-parameter DP-SGD needs untied "
                    "input/output embeddings (SmolLM2 ties them); the engine trains DP "
                    "SmolLM2 bases with LoRA"}
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer
        model = GradSampleModule(model, loss_reduction="mean")
        opt = DPOptimizer(opt, noise_multiplier=1.0, max_grad_norm=1.0,
                          expected_batch_size=batch_size, loss_reduction="mean")
    amp = (torch.autocast("cuda", dtype=torch.bfloat16)
           if dtype == "bf16" and device.startswith("cuda") and not dp else contextlib.nullcontext())
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        with amp:
            loss = per_example_nll(model, batch).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    flops_per_token = (4 if lora else 6) * n_matmul
    return {"config": config, "status": "ok", "matmul_params": n_matmul,
            "trainable_params": sum(p.numel() for p in params), "batch_size": batch_size,
            "tokens_per_step": tokens, "step_seconds": med, "step_min": min(times),
            "step_max": max(times), "steps": steps, "tokens_per_s": tokens / med,
            "flops_per_token": flops_per_token, "achieved_flops": flops_per_token * tokens / med,
            "seq_len": int(batch["input_ids"].shape[1])}


def run(model_name: str, args) -> dict:
    import torch  # noqa: F401

    records = load_records(200)
    model, tok = build(model_name, records)
    cfg = model.config
    batch = _batch(model, tok, records, args.batch_size)
    tokens = int(batch["input_ids"].numel())
    peak = matmul_peak(cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, tokens,
                       args.matmul_repeats, args.device, args.dtype)
    del model
    rows = []
    for c in args.configs.split(","):
        r = time_config(c, model_name, records, args.batch_size, args.steps, args.warmup,
                        args.device, args.dtype)
        if r["status"] == "ok":
            r["fraction_of_peak"] = r["achieved_flops"] / peak["peak"]
            r["fraction_of_model_mix"] = r["achieved_flops"] / peak["model_mix"]
        rows.append(r)
        print(json.dumps({"model": model_name, **{k: v for k, v in r.items()
                                                  if not isinstance(v, dict)}}), flush=True)
    return {"model": model_name, "matmul": peak, "rows": rows}


def markdown(results: list[dict]) -> str:
    out = ["| model | set-up | trainable params | tokens/step | step s (median [min, max]) | "
           "tokens/s | achieved GFLOP/s | matmul peak GFLOP/s (model-mix) | fraction of peak "
           "(of model-mix) |", "|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        pk = res["matmul"]
        for r in res["rows"]:
            if r["status"] != "ok":
                out.append(f"| {res['model']} | {r['config']} | – | – | – | – | – | – | "
                           f"{r['status']} |")
                continue
            out.append(
                f"| {res['model']} | {r['config']} | {r['trainable_params']:,} | "
                f"{r['tokens_per_step']} | {r['step_seconds']:.3f} [{r['step_min']:.3f}, "
                f"{r['step_max']:.3f}] | {r['tokens_per_s']:.0f} | {r['achieved_flops'] / 1e9:.1f}"
                f" | {pk['peak'] / 1e9:.1f} ({pk['model_mix'] / 1e9:.1f}) | "
                f"{r['fraction_of_peak']:.1%} ({r['fraction_of_model_mix']:.1%}) |")
    return "\n".join(out)


def plot(results: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.8), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        ok = [r for r in res["rows"] if r["status"] == "ok"]
        ax.bar([r["config"] for r in ok], [r["fraction_of_peak"] * 100 for r in ok])
        ax.set_ylabel("achieved FLOP/s, % of matmul peak")
        ax.set_title(f"{res['model']}: peak {res['matmul']['peak'] / 1e9:.0f} GFLOP/s", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", choices=("tiny", "smollm2"))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--matmul-repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: bf16 matmul peak and bf16 autocast training (CUDA only)")
    ap.add_argument("--out", default="var/bench/train_efficiency")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [run(m, args) for m in (args.model or ["tiny"])]
    doc = {"bench": "train_efficiency", "command": "python bench/train_efficiency.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "results": results,
        "environment": environment()}
    (out / "train_efficiency.json").write_text(json.dumps(doc, indent=1))
    plot(results, out / "train_efficiency.png")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
