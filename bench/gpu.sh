#!/usr/bin/env bash
# Issue 8 item 7: items 1-3 on a lent GPU (H200), bf16 autocast, within 10 minutes.
#
# Prepare here (once per session), then one `run` call of the device tool:
#   bash bench/gpu.sh prepare        # copies the TOFU files the benches read into .gpu/ (ignored)
#   device run: command="bash bench/gpu.sh run"  carry=[".gpu"]  timeout_s=600
# The device machine cannot reach the network: it uses its own Python if that has a CUDA torch,
# else the wheels carried in .gpu/wheels (fill with `pip download` here if needed).
# Results land in $OUT (JSON + PNG + log), copied back by the device tool.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-run}" in
  prepare)
    mkdir -p .gpu/data/tofu
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    cp ../shared/data/tofu/{full.json,holdout01.json,forget01.json,forget01_perturbed.json,retain_perturbed.json,real_authors_perturbed.json,world_facts_perturbed.json} .gpu/data/tofu/ 2>/dev/null || true
    # SmolLM2 in safetensors (exported once here): the device has no wheel index
    .venv/bin/python -c "from unlearning_engine.modeling import export_smollm2; export_smollm2()"
    cp -r ~/.cache/unlearning/smollm2-135m .gpu/smollm2-135m
    du -sh .gpu
    ;;
  run)
    OUT="${OUT:-var/bench/gpu}"; mkdir -p "$OUT"
    export UNLEARNING_DATA_DIR="$PWD/.gpu/data" PYTHONUNBUFFERED=1
    mkdir -p ~/.cache/unlearning && ln -sfn "$PWD/.gpu/smollm2-135m" ~/.cache/unlearning/smollm2-135m
    PY=python3
    $PY -c "import torch; assert torch.cuda.is_available(); print(torch.__version__, torch.cuda.get_device_name(0))"
    $PY -m pip install --no-deps -q -e . 2>/dev/null || true
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
    # item 3: training efficiency (bf16 matmul peak vs training steps)
    timeout 150 $PY bench/train_efficiency.py --model smollm2 --batch-size 32 --steps 10 --device cuda --dtype bf16 \
      --out "$OUT" 2>&1 | tee "$OUT/train_efficiency.log" || true
    # items 1-2: dp2 vs retrain and the method table on SmolLM2 (LoRA), forget01
    timeout 360 $PY bench/methods.py --preset smollm2-135m-lora --authors 10 --forget 2 \
      --device cuda --out "$OUT/methods" 2>&1 | tee "$OUT/methods.log" || true
    cp "$OUT"/methods/*.json "$OUT"/methods/*.png "$OUT"/ 2>/dev/null || true
    # issue 23 item 2: DP memory estimate vs torch.cuda.max_memory_allocated
    timeout 120 $PY bench/dp_memory.py --device cuda --json "$OUT/dp_memory_cuda.json" 2>&1 | tee "$OUT/dp_memory.log" || true
    ;;
esac
