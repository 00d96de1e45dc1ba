"""``GET /healthz``: database, broker and artifact store reachability (200 all ok, 503 otherwise).

Anonymous callers (load balancers) get ``{"ok": bool}`` and the status code only; the per-check
details (timings, backends, error text with internal host names) are for staff roles signed in by
session or API token (issue 13 item 9)."""
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


def _viewer_is_staff(request) -> bool:
    from .selectors import user_is_staff_role

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        try:
            from rest_framework.authentication import TokenAuthentication

            found = TokenAuthentication().authenticate(request)
        except Exception:  # noqa: BLE001 — a bad or unknown token is simply anonymous here
            found = None
        user = found[0] if found else None
    return bool(user is not None and user_is_staff_role(user))


def healthz(request):
    checks = {"database": _check(_database), "broker": _check(_broker), "artifact_store": _check(_store)}
    ok = all(c["ok"] for c in checks.values())
    body = {"ok": ok, "checks": checks} if _viewer_is_staff(request) else {"ok": ok}
    return JsonResponse(body, status=200 if ok else 503)
