"""Estimate vs measured peak memory of DP-SGD training (``unlearning_engine.memory_plan``).

Each configuration runs in a fresh subprocess: RSS after the imports is the baseline, then the model
artifact is loaded and ``train_dp_base`` runs one epoch with a fixed physical batch; the measured
figure is the process's peak RSS (``VmHWM``) minus the baseline. On CUDA (``--device cuda``) the
measured figure is ``torch.cuda.max_memory_allocated``. (tracemalloc does not see torch's
allocations, which bypass Python's allocator, so RSS / the CUDA allocator are the measures.)

    OMP_NUM_THREADS=1 python bench/memory_plan_measure.py [--device cpu|cuda] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first

CONFIGS = {
    "test-model": {"preset": "test", "vocab": 384, "lora": None, "physical_batch": 8, "words": 60},
    "demo-model": {"preset": "tiny", "vocab": 2048, "lora": None, "physical_batch": 8, "words": 60},
    "demo-model-lora": {"preset": "tiny", "vocab": 2048, "physical_batch": 8, "words": 60,
                        "lora": {"r": 8, "alpha": 16, "dropout": 0.0}},
}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def run_one(name: str, device: str) -> dict:
    """Child process body: measure one configuration."""
    import random
    import tempfile
    from pathlib import Path

    import torch

    from unlearning_engine import Example
    from unlearning_engine.dp import train_dp_base
    from unlearning_engine.hparams import v_lora
    from unlearning_engine.memory_plan import dp_memory_breakdown
    from unlearning_engine.modeling import build_model, save_artifact, train_tokenizer
    from unlearning_engine.training import encode_examples

    cfg = CONFIGS[name]
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "river", "stone", "light", "north", "paper"]
    examples = [Example(text=" ".join(rng.choice(words) for _ in range(cfg["words"]))) for _ in range(64)]
    tok = train_tokenizer([e.text for e in examples], vocab_size=cfg["vocab"])
    model = build_model(tok, preset=cfg["preset"])
    seq_len = max(len(e.input_ids) for e in encode_examples(tok, examples))
    total = sum(p.numel() for p in model.parameters())
    if cfg["lora"]:
        from unlearning_engine.lora import wrap_lora

        lora = v_lora("lora", cfg["lora"])
        wrapped = wrap_lora(build_model(tok, preset=cfg["preset"]), lora)
        trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
        del wrapped
    else:
        lora, trainable = None, total
    with tempfile.TemporaryDirectory() as tmp:
        save_artifact(model, tok, Path(tmp) / "base")
        shape_source = model.config
        del model
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        base_kib = _rss_kib("VmRSS")
        train_dp_base(Path(tmp) / "base", examples, Path(tmp) / "out", target_epsilon=8.0, epochs=1, lr=1e-3,
                      batch_size=cfg["physical_batch"] * 2, max_physical_batch_size=cfg["physical_batch"],
                      lora=lora, device=device)
        peak_kib = _rss_kib("VmHWM")
    measured = (torch.cuda.max_memory_allocated() if device == "cuda" else (peak_kib - base_kib) * 1024)
    est = dp_memory_breakdown(shape_source, trainable, cfg["physical_batch"], seq_len)
    return {"config": name, "device": device, "total_params": total, "trainable_params": trainable,
            "physical_batch": cfg["physical_batch"], "seq_len": seq_len, "estimate_bytes": est["total"],
            "breakdown": est, "measured_bytes": measured,
            "ratio_estimate_over_measured": round(est["total"] / measured, 3) if measured > 0 else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.device)))
        return
    rows = []
    for name in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--device", args.device],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name:16s} P={row['total_params']:>9,} trainable={row['trainable_params']:>9,} "
              f"B={row['physical_batch']} s={row['seq_len']} estimate={row['estimate_bytes'] / 2**20:8.1f} MiB "
              f"measured={row['measured_bytes'] / 2**20:8.1f} MiB ratio={row['ratio_estimate_over_measured']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
