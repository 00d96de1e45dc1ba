"""Issue 13 item 4: wrong identity codes are capped per ticket in total (a resend does not reset the
count); sign-in e-mails are throttled per address and per IP; code resend/verify per ticket and IP."""
import re

import pytest
from django.core import mail
from django.test import Client

from requests_app.models import RemovalTicket


def _code():
    return re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.fixture
def ticket(api, forget_subject, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = api("owner").post("/api/v1/tickets/", {"subject_name": forget_subject.display_name}, format="json")
    assert r.status_code == 201
    return r.json()["id"]


def test_wrong_codes_are_capped_per_ticket_and_resend_does_not_reset(api, ticket, settings,
                                                                      django_capture_on_commit_callbacks):
    settings.IDENTITY_CODE_MAX_ATTEMPTS = 5
    owner = api("owner")
    code = _code()
    for _ in range(3):
        r = owner.post(f"/api/v1/tickets/{ticket}/verify-identity/", {"code": _wrong(code)}, format="json")
        assert r.status_code == 400 and r.json()["detail"] == "wrong code"
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post(f"/api/v1/tickets/{ticket}/resend-code/").status_code == 200
    code = _code()
    assert RemovalTicket.objects.get(public_id=ticket).identity_attempts == 3  # not reset
    for _ in range(2):
        r = owner.post(f"/api/v1/tickets/{ticket}/verify-identity/", {"code": _wrong(code)}, format="json")
        assert r.status_code == 400
    # the total of 5 is used up: even the right code is refused, and a new code is not sent
    r = owner.post(f"/api/v1/tickets/{ticket}/verify-identity/", {"code": code}, format="json")
    assert r.status_code == 400 and "too many wrong codes" in r.json()["detail"]
    sent = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        r = owner.post(f"/api/v1/tickets/{ticket}/resend-code/")
    assert r.status_code == 400 and "too many wrong codes" in r.json()["detail"]
    assert len(mail.outbox) == sent
    t = RemovalTicket.objects.get(public_id=ticket)
    assert t.status == "submitted" and t.identity_verified_at is None and t.identity_attempts == 5


def test_api_code_actions_are_throttled_per_ticket(api, ticket, settings):
    settings.IDENTITY_CODE_MAX_ATTEMPTS = 100
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**SimpleRateThrottle.THROTTLE_RATES, "identity_code": "4/hour"}
    old = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = rates  # DRF reads the rates once at import
    try:
        owner = api("owner")
        statuses = [owner.post(f"/api/v1/tickets/{ticket}/verify-identity/", {"code": "000000"},
                               format="json").status_code for _ in range(4)]
        r = owner.post(f"/api/v1/tickets/{ticket}/resend-code/")
    finally:
        SimpleRateThrottle.THROTTLE_RATES = old
    assert statuses == [400] * 4
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_signin_emails_are_throttled_per_address(db, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "signin_email": "3/hour", "signin_ip": "100/hour"}
    client = Client()
    statuses = [client.post("/signin/", {"email": "Victim@Example.org" if i % 2 else "victim@example.org"}).status_code
                for i in range(5)]
    assert statuses == [302, 302, 302, 429, 429]
    assert len(mail.outbox) == 3
    r = client.post("/signin/", {"email": "victim@example.org"})
    assert "Too many attempts" in r.content.decode() and int(r["Retry-After"]) > 0
    # another address from the same client is not affected by the first address's limit
    assert client.post("/signin/", {"email": "someone@example.org"}).status_code == 302


def test_signin_emails_are_throttled_per_ip(db, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "signin_email": "100/hour", "signin_ip": "4/hour"}
    statuses = [Client(REMOTE_ADDR="198.51.100.7").post("/signin/", {"email": f"u{i}@example.org"}).status_code
                for i in range(6)]
    assert statuses == [302] * 4 + [429] * 2
    assert len(mail.outbox) == 4
    assert Client(REMOTE_ADDR="198.51.100.8").post("/signin/", {"email": "u9@example.org"}).status_code == 302


def test_portal_verify_and_resend_are_throttled_per_ticket(users, ticket, settings):
    settings.IDENTITY_CODE_MAX_ATTEMPTS = 100
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "code_ticket": "3/hour", "code_ip": "100/hour"}
    client = Client()
    client.force_login(users["owner"])
    statuses = [client.post(f"/requests/{ticket}/verify/", {"code": "000000"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # the form again, with "not right"
    r = client.post(f"/requests/{ticket}/verify/", {"code": "000000"})
    assert r.status_code == 429 and "Too many attempts" in r.content.decode()
    r = client.post(f"/requests/{ticket}/resend-code/")
    assert r.status_code == 429 and "Retry-After" in r


def test_portal_verify_is_throttled_per_ip(users, ticket, settings):
    settings.IDENTITY_CODE_MAX_ATTEMPTS = 100
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "code_ticket": "100/hour", "code_ip": "2/hour"}
    client = Client(REMOTE_ADDR="203.0.113.5")
    client.force_login(users["owner"])
    assert [client.post(f"/requests/{ticket}/verify/", {"code": "000000"}).status_code for _ in range(3)] == [
        200, 200, 429]


def test_portal_resend_after_the_cap_is_400_not_500(users, ticket, settings):
    settings.IDENTITY_CODE_MAX_ATTEMPTS = 1
    client = Client()
    client.force_login(users["owner"])
    client.post(f"/requests/{ticket}/verify/", {"code": _wrong(_code())})
    r = client.post(f"/requests/{ticket}/resend-code/")
    assert r.status_code == 400 and "no longer be confirmed by code" in r.content.decode()


def test_rate_parse_and_window():
    from requests_app.ratelimit import rate_parse

    assert rate_parse("5/hour") == (5, 3600) and rate_parse("10/minute") == (10, 60)
    with pytest.raises(ValueError):
        rate_parse("5/fortnight")


def test_throttle_cache_keys_are_memcached_safe_for_any_ticket_id():
    """Issue 22 item 10: a ticket id from the URL with spaces / 300 characters gave Django's
    CacheKeyWarning; the ident is hashed (sha256, 32 hex digits) so every key is safe."""
    import hashlib
    import warnings
    from types import SimpleNamespace

    from django.core.cache import cache
    from django.test import RequestFactory

    from requests_app.api.throttles import IdentityCodePerIPThrottle, IdentityCodePerTicketThrottle

    bad = "a b\tc" + "x" * 300
    view = SimpleNamespace(kwargs={"public_id": bad}, lookup_field="public_id")
    key = IdentityCodePerTicketThrottle().get_cache_key(RequestFactory().get("/"), view)
    assert key == "throttle_identity_code-ticket_" + hashlib.sha256(bad.encode()).hexdigest()[:32]
    ip_key = IdentityCodePerIPThrottle().get_cache_key(RequestFactory().get("/"), view)
    assert ip_key == "throttle_identity_code-ip_" + hashlib.sha256(b"127.0.0.1").hexdigest()[:32]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.validate_key(key)
        cache.validate_key(ip_key)


def test_certificate_queryset_has_a_default_order():
    """Issue 22 item 10: the paginated certificate list was unordered (UnorderedObjectListWarning)."""
    from requests_app.models import Certificate

    assert Certificate._meta.ordering == ["-issued_at", "id"]
    assert Certificate.objects.all().ordered
