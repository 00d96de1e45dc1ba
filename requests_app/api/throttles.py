"""DRF throttles as fixed-window counters (issue 17 part 2) and the identity-code throttles (issue 13 item 4).

DRF's ``SimpleRateThrottle`` keeps a list of timestamps per client in the cache and rewrites it on
every request (a read-modify-write that races between processes). Here each (scope, client) has one
counter per window of the rate's period, raised with one atomic ``cache.incr`` (Redis ``INCRBY`` with
``CACHE_URL=redis://``; the first request of a window adds the key with the window's TTL). A window
admits ``N`` requests; across a window boundary a client can get up to ``2N`` in one period (the
usual fixed-window trade-off). The identity-code actions are throttled per ticket and per client IP,
rate ``DEFAULT_THROTTLE_RATES["identity_code"]`` (default 10/hour each), on top of the per-ticket
total cap on wrong codes (``IDENTITY_CODE_MAX_ATTEMPTS``, never reset by a resend).
"""
from __future__ import annotations

import hashlib

from rest_framework import throttling


def throttle_ident_digest(ident: str) -> str:
    """sha256 (first 32 hex digits) of a throttle identity: the ticket id comes from the URL and
    may hold spaces, control characters or be very long, which memcached-safe cache keys may not
    (Django's ``CacheKeyWarning``: at most 250 characters, no spaces or control characters)."""
    return hashlib.sha256(str(ident).encode("utf-8", "surrogatepass")).hexdigest()[:32]


class FixedWindowMixin:
    """``allow_request``/``wait`` for a ``SimpleRateThrottle`` subclass: one counter per window."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        key = f"{self.key}:fw{window}"
        try:
            count = self.cache.incr(key)
        except ValueError:  # first request of the window (or the key was evicted)
            if self.cache.add(key, 1, timeout=self.duration + 1):
                count = 1
            else:  # another process added it meanwhile
                count = self.cache.incr(key)
        self.window_end = (window + 1) * self.duration
        return count <= self.num_requests

    def wait(self):
        return max(1.0, self.window_end - self.now)


class AnonRateThrottle(FixedWindowMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(FixedWindowMixin, throttling.UserRateThrottle):
    pass


class IdentityCodePerTicketThrottle(FixedWindowMixin, throttling.SimpleRateThrottle):
    scope = "identity_code"

    def get_cache_key(self, request, view):
        ticket = view.kwargs.get(getattr(view, "lookup_url_kwarg", None) or view.lookup_field)
        return self.cache_format % {"scope": f"{self.scope}-ticket",
                                    "ident": throttle_ident_digest(ticket)} if ticket else None


class IdentityCodePerIPThrottle(FixedWindowMixin, throttling.SimpleRateThrottle):
    scope = "identity_code"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": f"{self.scope}-ip",
                                    "ident": throttle_ident_digest(self.get_ident(request))}


#: For ``@action(throttle_classes=...)``: the identity-code throttles plus the default per-user rate.
IDENTITY_CODE_THROTTLES = [IdentityCodePerTicketThrottle, IdentityCodePerIPThrottle, UserRateThrottle]
