"""``GET /healthz``: database, broker and artifact store reachability (200 all ok, 503 otherwise)."""
from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def _check(fn) -> dict:
    t0 = time.monotonic()
    try:
        detail = fn()
        return {"ok": True, "ms": round((time.monotonic() - t0) * 1000, 1), **({"detail": detail} if detail else {})}
    except Exception as exc:  # noqa: BLE001 — a health check reports, it does not raise
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def _database():
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return connection.vendor


def _broker():
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "in-process (eager)"
    from .celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
    return conn.transport_cls if isinstance(conn.transport_cls, str) else "ok"


def _store():
    from .artifacts import LocalArtifactStore, artifact_store

    store = artifact_store()
    if isinstance(store, LocalArtifactStore):
        if not store.root.is_dir():
            raise FileNotFoundError(store.root)
        return "local"
    store.client.head_bucket(Bucket=store.bucket)
    return "s3"


def healthz(request):
    checks = {"database": _check(_database), "broker": _check(_broker), "artifact_store": _check(_store)}
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
