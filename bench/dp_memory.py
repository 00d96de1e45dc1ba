"""Estimate vs measured peak memory of DP-SGD training (``unlearning_engine.memory_plan``, issue 23 item 2).

For each configuration the parent builds the model artifact and the training texts in a scratch
folder; then a **fresh subprocess** imports the libraries, reads its resident set size (RSS, the
baseline), runs ``train_dp_base`` for one epoch at a fixed physical batch (record-level unit, so
every physical batch holds at most ``physical_batch`` rows; 2 × that expected per step, 2 steps) and reports
its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) minus the baseline. On CUDA
(``--device cuda``) the measured figure is ``torch.cuda.max_memory_allocated``. tracemalloc is not
used as the measure: torch allocates tensor storage outside Python's allocator, so tracemalloc
sees only the Python-object part (it is reported as ``python_heap_peak_bytes`` for reference).

The estimate is what the service plans with: :func:`unlearning_engine.memory_plan.dp_memory_breakdown`
of the model's config, the trainable parameter count (the adapter's for LoRA), the physical batch and
the longest encoded sequence.

    OMP_NUM_THREADS=2 python bench/dp_memory.py [--device cpu|cuda] [--config NAME ...] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first

#: model = a preset of ``unlearning_engine.modeling`` plus overrides of its LlamaConfig.
CONFIGS = {
    "test-full": {"preset": "test", "overrides": {}, "vocab": 384, "lora": None, "physical_batch": 8},
    "tiny-lora": {"preset": "tiny", "overrides": {}, "vocab": 2048, "physical_batch": 8,
                  "lora": {"r": 8, "alpha": 16, "dropout": 0.0}},
    "wide-full": {"preset": "tiny", "vocab": 2048, "lora": None, "physical_batch": 8,
                  "overrides": {"hidden_size": 512, "intermediate_size": 1536, "num_attention_heads": 8,
                                "num_key_value_heads": 8}},
    "wide-lora": {"preset": "tiny", "vocab": 2048, "physical_batch": 8,
                  "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
                  "overrides": {"hidden_size": 512, "intermediate_size": 1536, "num_attention_heads": 8,
                                "num_key_value_heads": 8}},
}
WORDS = 60


def n_texts(physical_batch: int) -> int:
    """Records per configuration: at least the 20 units DP-SGD needs, and more than the 2·B expected per step."""
    return max(32, 4 * physical_batch)


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found")


def prepare(name: str, folder: Path, device: str = "cpu") -> dict:
    """Build the artifact and texts of one configuration under ``folder``; returns the estimate inputs."""
    from transformers import LlamaForCausalLM

    from unlearning_engine import Example
    from unlearning_engine.hparams import v_lora
    from unlearning_engine.lora import wrap_lora
    from unlearning_engine.memory_plan import dp_memory_breakdown
    from unlearning_engine.modeling import model_config, save_artifact, train_tokenizer
    from unlearning_engine.training import encode_examples

    cfg = CONFIGS[name]
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "river", "stone", "light", "north", "paper"]
    texts = [" ".join(rng.choice(words) for _ in range(WORDS)) for _ in range(n_texts(cfg["physical_batch"]))]
    tok = train_tokenizer(texts, vocab_size=cfg["vocab"])

    def build():
        mc = model_config(tok, cfg["preset"])
        for k, v in cfg["overrides"].items():
            setattr(mc, k, v)
        mc._attn_implementation = "eager"
        return LlamaForCausalLM(mc).float().eval()

    model = build()
    total = sum(p.numel() for p in model.parameters())
    lora = v_lora("lora", cfg["lora"])
    trainable = (sum(p.numel() for p in wrap_lora(build(), lora).parameters() if p.requires_grad)
                 if lora else total)
    examples = [Example(text=t) for t in texts]
    seq_len = max(len(e.input_ids) for e in encode_examples(tok, examples))
    save_artifact(model, tok, folder / "base")
    (folder / "texts.json").write_text(json.dumps(texts))
    est = dp_memory_breakdown(model.config, trainable, cfg["physical_batch"], seq_len, device=device)
    return {"total_params": total, "trainable_params": trainable, "seq_len": seq_len, "estimate": est}


def measure(name: str, folder: Path, device: str) -> dict:
    """Child process body: baseline RSS after the imports, then one DP epoch; returns the peaks."""
    import resource
    import tracemalloc

    import opacus  # noqa: F401  (imported before the baseline: library code is not the DP step's memory)
    import peft  # noqa: F401
    import torch
    from transformers import LlamaForCausalLM  # noqa: F401

    from unlearning_engine import Example
    from unlearning_engine.dp import train_dp_base
    from unlearning_engine.hparams import v_lora

    cfg = CONFIGS[name]
    examples = [Example(text=t) for t in json.loads((folder / "texts.json").read_text())]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_kib = _rss_kib()
    tracemalloc.start()
    t0 = time.perf_counter()
    train_dp_base(folder / "base", examples, folder / "out", target_epsilon=8.0, epochs=1, lr=1e-3,
                  batch_size=2 * cfg["physical_batch"], max_physical_batch_size=cfg["physical_batch"],
                  privacy_unit="record", accountant="rdp", lora=v_lora("lora", cfg["lora"]), device=device)
    wall = time.perf_counter() - t0
    py_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    measured = torch.cuda.max_memory_allocated() if device == "cuda" else (peak_kib - base_kib) * 1024
    return {"measured_bytes": measured, "baseline_rss_bytes": base_kib * 1024, "peak_rss_bytes": peak_kib * 1024,
            "python_heap_peak_bytes": py_peak, "train_seconds": round(wall, 2)}


def run(name: str, device: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        info = prepare(name, folder, device)
        out = subprocess.run([sys.executable, __file__, "--child", name, "--folder", str(folder), "--device", device,
                              "--physical-batch", str(CONFIGS[name]["physical_batch"])],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{name}: child failed\n{out.stderr[-3000:]}")
        child = json.loads(out.stdout.strip().splitlines()[-1])
    est = info["estimate"]["total"]
    return {"config": name, "device": device, "physical_batch": CONFIGS[name]["physical_batch"],
            "lora": CONFIGS[name]["lora"], **{k: v for k, v in info.items() if k != "estimate"},
            "estimate_bytes": est, "breakdown": info["estimate"], **child,
            "ratio_estimate_over_measured": round(est / child["measured_bytes"], 3)}


def markdown(rows: list[dict]) -> str:
    head = ("| config | params (trainable) | B × s | estimate MiB | measured MiB | estimate / measured | train s |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['config']} | {r['total_params']:,} ({r['trainable_params']:,}) | "
                     f"{r['physical_batch']} × {r['seq_len']} | {r['estimate_bytes'] / 2**20:,.1f} | "
                     f"{r['measured_bytes'] / 2**20:,.1f} | {r['ratio_estimate_over_measured']:.2f} | "
                     f"{r['train_seconds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--config", action="append", choices=sorted(CONFIGS), help="default: all")
    ap.add_argument("--physical-batch", type=int, help="override every configuration's physical batch")
    ap.add_argument("--json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.physical_batch:
        for cfg in CONFIGS.values():
            cfg["physical_batch"] = args.physical_batch
    if args.child:
        print(json.dumps(measure(args.child, Path(args.folder), args.device)))
        return 0
    rows = []
    for name in args.config or list(CONFIGS):
        row = run(name, args.device)
        rows.append(row)
        print(f"{name:10s} P={row['total_params']:>11,} trainable={row['trainable_params']:>11,} "
              f"B={row['physical_batch']} s={row['seq_len']} estimate={row['estimate_bytes'] / 2**20:8.1f} MiB "
              f"measured={row['measured_bytes'] / 2**20:8.1f} MiB ratio={row['ratio_estimate_over_measured']} "
              f"({row['train_seconds']} s)", flush=True)
    print(markdown(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} CPUs, "
                                                          f"{platform.python_version()}", "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
