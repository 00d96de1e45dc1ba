"""DRF throttles for the identity-code actions (issue 13 item 4): per ticket and per client IP,
rate ``DEFAULT_THROTTLE_RATES["identity_code"]`` (default 10/hour each), on top of the per-ticket
total cap on wrong codes (``IDENTITY_CODE_MAX_ATTEMPTS``, never reset by a resend)."""
from __future__ import annotations

import hashlib

from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle


def throttle_ident_digest(ident: str) -> str:
    """sha256 (first 32 hex digits) of a throttle identity: the ticket id comes from the URL and
    may hold spaces, control characters or be very long, which memcached-safe cache keys may not
    (Django's ``CacheKeyWarning``: at most 250 characters, no spaces or control characters)."""
    return hashlib.sha256(str(ident).encode("utf-8", "surrogatepass")).hexdigest()[:32]


class IdentityCodePerTicketThrottle(SimpleRateThrottle):
    scope = "identity_code"

    def get_cache_key(self, request, view):
        ticket = view.kwargs.get(getattr(view, "lookup_url_kwarg", None) or view.lookup_field)
        return self.cache_format % {"scope": f"{self.scope}-ticket",
                                    "ident": throttle_ident_digest(ticket)} if ticket else None


class IdentityCodePerIPThrottle(SimpleRateThrottle):
    scope = "identity_code"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": f"{self.scope}-ip",
                                    "ident": throttle_ident_digest(self.get_ident(request))}


#: For ``@action(throttle_classes=...)``: the identity-code throttles plus the default per-user rate.
IDENTITY_CODE_THROTTLES = [IdentityCodePerTicketThrottle, IdentityCodePerIPThrottle, UserRateThrottle]
