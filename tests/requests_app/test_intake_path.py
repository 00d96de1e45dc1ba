"""Issue 17 part 2: what a ticket submission does in the request path, and what it hands to queues."""
import json
import uuid

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from requests_app.models import DataSubject, RemovalTicket, WebhookDelivery, WebhookEndpoint


@pytest.fixture
def subject(db):
    return DataSubject.objects.create(display_name="Intake Subject")


def _post(client, subject, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/api/v1/tickets/", json.dumps({"subject_id": str(subject.public_id)}),
                       content_type="application/json", **headers)


def test_submission_statements(api, subject, django_capture_on_commit_callbacks):
    """9 statements besides the transaction's own: auth token, roles, subject, duplicate check, the
    idempotent replay look-up under the key's lock, the ticket INSERT with its identity code, the
    sequence, the audit INSERT, the webhook endpoints; on PostgreSQL also the key's advisory lock
    (with BEGIN and COMMIT: 12, as ``bench/intake_load.py profile`` shows; 15 before issue 17). No
    UPDATE of the new ticket, no jobs query."""
    owner = api("owner")
    _post(owner, subject, key=str(uuid.uuid4()))  # warm caches (content types, ...)
    with CaptureQueriesContext(connection) as q, django_capture_on_commit_callbacks(execute=True):
        r = _post(owner, subject, key=str(uuid.uuid4()))
    assert r.status_code == 201 and r.json()["jobs"] == []
    sql = [x["sql"] for x in q.captured_queries]
    assert not any(s.startswith("UPDATE") for s in sql), sql
    assert not any("requests_app_unlearningjob" in s for s in sql), sql
    assert sum(s.startswith("INSERT") for s in sql) == 2  # the ticket and its audit event
    statements = [s for s in sql if s not in ("BEGIN", "COMMIT") and not s.startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 9 + (connection.vendor == "postgresql"), sql  # + the key's advisory lock
    ticket = RemovalTicket.objects.get(public_id=r.json()["id"])
    assert ticket.identity_code_sha256 and ticket.identity_code_expires_at  # set by the INSERT itself
    assert "is " in mail.outbox[-1].body and str(ticket.public_id) in mail.outbox[-1].body


def test_replay_is_answered_under_the_lock(api, subject, django_capture_on_commit_callbacks):
    owner = api("owner")
    key = str(uuid.uuid4())
    first = _post(owner, subject, key)
    again = _post(owner, subject, key)
    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert RemovalTicket.objects.filter(idempotency_key=key).count() == 1


def test_email_is_queued_after_commit_and_sent_inline_when_the_broker_fails(api, subject, monkeypatch,
                                                                             django_capture_on_commit_callbacks):
    from requests_app import tasks

    queued = []
    monkeypatch.setattr(tasks.email_send_task, "delay", lambda *a: queued.append(a))
    with django_capture_on_commit_callbacks(execute=True):
        r = _post(api("owner"), subject)
    assert r.status_code == 201 and len(queued) == 1 and not mail.outbox
    subject_line, body, to = queued[0]
    assert subject_line == "Confirm your data-removal request" and to == ["owner@example.org"]
    assert r.json()["id"] in body

    def broker_down(*a):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.email_send_task, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        r = _post(api("owner"), subject)
    assert r.status_code == 201 and len(mail.outbox) == 1 and r.json()["id"] in mail.outbox[0].body


def test_webhooks_fan_out_in_one_message_after_commit(api, subject, monkeypatch, django_capture_on_commit_callbacks):
    from requests_app import tasks

    a = WebhookEndpoint.objects.create(url="https://a.example/hook", secret="s1")
    b = WebhookEndpoint.objects.create(url="https://b.example/hook", secret="s2", events=["ticket.submitted"])
    WebhookEndpoint.objects.create(url="https://c.example/hook", secret="s3", events=["certificate.issued"])
    messages = []
    monkeypatch.setattr(tasks.webhook_fan_out_task, "delay", lambda ids: messages.append(ids))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = _post(api("owner"), subject)
    assert r.status_code == 201 and len(callbacks) == 2  # the e-mail and one webhook message
    deliveries = list(WebhookDelivery.objects.order_by("id"))
    assert [d.endpoint_id for d in deliveries] == [a.id, b.id]
    assert messages == [[d.id for d in deliveries]]
    assert deliveries[0].payload["data"] == {"ticket": r.json()["id"], "status": "submitted"}


def test_fan_out_task_enqueues_one_delivery_task_each(monkeypatch):
    from requests_app import tasks

    sent = []
    monkeypatch.setattr(tasks.webhook_deliver_task, "delay", lambda i: sent.append(i))
    tasks.webhook_fan_out_task(delivery_ids=[3, 5])
    assert sent == [3, 5]


def test_fixed_window_throttle_counts_with_one_integer(api, subject, settings, monkeypatch):
    """N requests per window pass, the next is 429 with Retry-After up to the window's end; the
    counter is one integer in the cache (Redis INCR in production), not a timestamp list."""
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    from requests_app.api import throttles

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, "user": "3/minute"})
    monkeypatch.setattr(throttles.UserRateThrottle, "timer", lambda self: 600.0 + 12.5)  # 12.5 s into window 10
    owner = api("owner")
    statuses = [owner.get("/api/v1/tickets/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = owner.get("/api/v1/tickets/")
    assert r.status_code == 429 and r.headers["Retry-After"] == "48"
    key = f"throttle_user_{r.wsgi_request.user.pk}:fw10"
    assert cache.get(key) == 5
    monkeypatch.setattr(throttles.UserRateThrottle, "timer", lambda self: 660.0)  # the next window
    assert owner.get("/api/v1/tickets/").status_code == 200
