"""Fixed-window rate limits in the Django cache (issue 13 item 4), for the portal's sign-in e-mails
and identity-code pages; the API uses the DRF throttles of ``api/throttles.py`` on the same cache.

Rates are ``"N/period"`` strings (period: second, minute, hour, day) from ``settings.RATE_LIMITS``.
Counters live in ``CACHES["default"]``: in-process memory by default, ``CACHE_URL=redis://...`` in
production so that every web process shares them.
"""
from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
           "d": 86400, "day": 86400}


def rate_parse(rate: str) -> tuple[int, int]:
    """``"5/hour"`` → ``(5, 3600)`` (requests, seconds).

    Raises:
        ValueError: not ``N/period``.
    """
    count, _, period = rate.partition("/")
    if period not in PERIODS:
        raise ValueError(f"rate {rate!r}: give N/second, N/minute, N/hour or N/day")
    return int(count), PERIODS[period]


def client_ip(request) -> str:
    """The peer address (``REMOTE_ADDR``; a TLS proxy in front must set it, e.g. gunicorn ``--forwarded-allow-ips``)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def rate_limit_hit(scope: str, ident: str, *, now: float | None = None) -> int | None:
    """Count one hit of ``ident`` in ``scope`` (a key of ``settings.RATE_LIMITS``).

    Returns None while within the limit, else the seconds until the window ends (for ``Retry-After``).
    Hits above the limit are counted too, so hammering does not open the next window early.
    """
    limit, period = rate_parse(settings.RATE_LIMITS[scope])
    now = time.time() if now is None else now
    window = int(now // period)
    digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    key = f"rl:{scope}:{digest}:{window}"
    cache.add(key, 0, timeout=period + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=period + 1)
        count = 1
    if count > limit:
        return max(1, int((window + 1) * period - now))
    return None


def rate_limits_hit(checks: list[tuple[str, str]]) -> int | None:
    """Count every ``(scope, ident)``; the largest wait if any is over its limit (each is counted)."""
    waits = [w for w in (rate_limit_hit(scope, ident) for scope, ident in checks) if w]
    return max(waits) if waits else None
