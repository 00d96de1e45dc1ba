#!/usr/bin/env bash
# Start one unlearning worker on the "gpu" queue (DESIGN §9): one process per GPU, -P solo so CUDA is
# never initialised before a fork, prefetch 1 and late acks from settings.
#   CUDA_VISIBLE_DEVICES=0 DATABASE_URL=... CELERY_BROKER_URL=redis://... infra/worker.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" -m celery -A requests_app worker -Q "${WORKER_QUEUES:-gpu}" -P solo -c 1 \
  -n "gpu${CUDA_VISIBLE_DEVICES:-cpu}@%h" -l "${LOG_LEVEL:-INFO}"
