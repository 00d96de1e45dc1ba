"""Lifecycle features of issue 5: holds, extensions, retries, four-eyes, duplicates, evidence, webhooks."""
import datetime as dt
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography.fernet import InvalidToken
from django.utils import timezone

from requests_app import selectors, services
from requests_app.models import (
    AuditEvent,
    RemovalTicket,
    TicketStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from requests_app.workflow import ALLOWED_TRANSITIONS, TransitionError

UTC = dt.UTC


def _in_review(users, subject, **kw):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=subject, **kw)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.IDENTITY_VERIFIED,
                                                      identity_verified_at=timezone.now())
    return services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])


@pytest.mark.parametrize("src", sorted(ALLOWED_TRANSITIONS))
@pytest.mark.parametrize("dst", sorted(ALLOWED_TRANSITIONS))
def test_every_transition_allowed_or_refused_by_table(users, forget_subject, src, dst):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=src)
    ticket.refresh_from_db()
    from django.db import transaction

    allowed = dst in ALLOWED_TRANSITIONS[src]
    before = AuditEvent.objects.count()
    if allowed:
        with transaction.atomic():
            services._ticket_transition(ticket, dst, actor="t", verb="test")
        assert RemovalTicket.objects.get(pk=ticket.pk).status == dst
        assert AuditEvent.objects.count() == before + 1
    else:
        with pytest.raises(TransitionError) as err, transaction.atomic():
            services._ticket_transition(ticket, dst, actor="t", verb="test")
        assert err.value.current_status == src
        assert RemovalTicket.objects.get(pk=ticket.pk).status == src
        assert AuditEvent.objects.count() == before


def test_four_eyes_reviewer_cannot_approve(users, forget_subject, target_model, settings):
    from django.contrib.auth.models import Group

    settings.FOUR_EYES_APPROVAL = True
    users["reviewer"].groups.add(Group.objects.get_or_create(name="legal_approver")[0])
    ticket = _in_review(users, forget_subject)
    with pytest.raises(services.PermissionDeniedError, match="four-eyes"):
        services.ticket_approve(ticket=ticket, approver=users["reviewer"], method="dp2")
    assert RemovalTicket.objects.get(pk=ticket.pk).status == TicketStatus.IN_REVIEW


def test_hold_and_release(users, forget_subject):
    ticket = _in_review(users, forget_subject)
    with pytest.raises(services.ServiceError):
        services.ticket_hold(ticket=ticket, actor=users["reviewer"], reason="")
    ticket = services.ticket_hold(ticket=ticket, actor=users["reviewer"], reason="litigation hold #12")
    assert ticket.status == TicketStatus.ON_HOLD and ticket.status_before_hold == TicketStatus.IN_REVIEW
    with pytest.raises(TransitionError):
        services.ticket_approve(ticket=ticket, approver=users["approver"])
    ticket = services.ticket_release_hold(ticket=ticket, actor=users["reviewer"])
    assert ticket.status == TicketStatus.IN_REVIEW


def test_gdpr_extension_once_up_to_two_months(users, forget_subject, mailoutbox):
    received = timezone.now() - dt.timedelta(days=3)
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject, received_at=received)
    original = ticket.due_at
    with pytest.raises(services.ServiceError, match="at most two"):
        services.ticket_extend_deadline(ticket=ticket, actor=users["reviewer"], reason="complex", months=2, days=1)
    ticket = services.ticket_extend_deadline(ticket=ticket, actor=users["reviewer"], reason="complex request")
    from dateutil.relativedelta import relativedelta

    assert ticket.original_due_at == original and ticket.due_at == original + relativedelta(months=2)
    assert ticket.extension_notified_at is not None and ticket.extension_notified_at < original
    with pytest.raises(services.ServiceError, match="already extended"):
        services.ticket_extend_deadline(ticket=ticket, actor=users["reviewer"], reason="again")


def test_extension_after_deadline_refused_and_ccpa_45_days(users, forget_subject):
    late, _ = services.ticket_create(requester=users["owner"], subject=forget_subject,
                                     received_at=timezone.now() - dt.timedelta(days=40))
    with pytest.raises(services.ServiceError, match="before the original deadline"):
        services.ticket_extend_deadline(ticket=late, actor=users["reviewer"], reason="x")
    ccpa, _ = services.ticket_create(requester=users["owner"], subject=forget_subject, jurisdiction="CCPA")
    with pytest.raises(services.ServiceError, match="1 to 45"):
        services.ticket_extend_deadline(ticket=ccpa, actor=users["reviewer"], reason="x", days=46)
    due = ccpa.due_at
    ccpa = services.ticket_extend_deadline(ticket=ccpa, actor=users["reviewer"], reason="x")
    assert ccpa.due_at - due == dt.timedelta(days=45)


def test_overdue_due_soon_and_flagging(users, forget_subject):
    now = timezone.now()
    overdue, _ = services.ticket_create(requester=users["owner"], subject=forget_subject,
                                        received_at=now - dt.timedelta(days=40))
    soon, _ = services.ticket_create(requester=users["owner"], subject=forget_subject,
                                     received_at=now - dt.timedelta(days=27))
    later, _ = services.ticket_create(requester=users["owner"], subject=forget_subject, received_at=now)
    assert list(selectors.tickets_overdue(now=now)) == [overdue]
    assert list(selectors.tickets_due_soon(now=now, horizon=now + dt.timedelta(days=7))) == [soon]
    assert services.tickets_flag_due_soon(now=now) == 1
    assert services.tickets_flag_due_soon(now=now) == 0  # flagged once
    assert AuditEvent.objects.filter(verb="ticket.due_soon", object_id=str(soon.public_id)).count() == 1
    assert later.due_soon_flagged_at is None


def test_duplicate_within_window_is_linked_as_evidence(users, forget_subject):
    first, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    second, created = services.ticket_create(requester=users["owner"], subject=forget_subject)
    assert created and second.duplicate_of == first
    event = AuditEvent.objects.get(verb="ticket.submitted", object_id=str(second.public_id))
    assert event.after["duplicate_of"] == str(first.public_id)


def test_idempotency_same_key_other_body_conflicts(users, forget_subject):
    services.ticket_create(requester=users["owner"], subject=forget_subject, idempotency_key="k",
                           request_body_sha256="a" * 64)
    with pytest.raises(services.IdempotencyConflict):
        services.ticket_create(requester=users["owner"], subject=forget_subject, idempotency_key="k",
                               request_body_sha256="b" * 64)


def test_evidence_encrypted_at_rest_and_size_limit(users, forget_subject, settings):
    text = "My e-mail is ana@example.org and my pen name is Ana B."
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject, evidence_text=text)
    assert text not in ticket.evidence_ciphertext and "ana@" not in ticket.evidence_ciphertext
    assert services.decrypt_text(ticket.evidence_ciphertext) == text
    assert ticket.evidence_sha256 == hashlib.sha256(text.encode()).hexdigest()
    settings.EVIDENCE_ENCRYPTION_KEY = "x" * 43 + "="
    with pytest.raises((InvalidToken, ValueError)):
        services.decrypt_text(ticket.evidence_ciphertext)
    settings.EVIDENCE_MAX_BYTES = 10
    with pytest.raises(services.PayloadTooLarge, match="limit is 10 bytes"):
        services.ticket_create(requester=users["owner"], subject=forget_subject, evidence_text=text)


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    fail_first = 0

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Hook.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def test_webhooks_signed_logged_and_retried(users, forget_subject, hook_server, django_capture_on_commit_callbacks):
    endpoint = WebhookEndpoint.objects.create(url=hook_server, secret="s3cret", events=["ticket.submitted"])
    _Hook.fail_first = 1  # first attempt gets 503, the eager retry succeeds
    with django_capture_on_commit_callbacks(execute=True):
        ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event == "ticket.submitted"
    # eager mode: the task retried inline after the 503
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.STATUS_DELIVERED and delivery.attempts == 2
    headers, body = _Hook.received[-1]
    assert headers["x-signature-sha256"] == hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert json.loads(body)["data"]["ticket"] == str(ticket.public_id)


def test_requeue_resends_old_queued_jobs_and_requeues_silent_running_ones(target_model, settings,
                                                                        django_capture_on_commit_callbacks):
    from requests_app.models import JobStatus, ModelVersion, UnlearningJob

    source = ModelVersion.objects.get(model=target_model, is_serving=True)
    old = timezone.now() - dt.timedelta(hours=1)
    queued = UnlearningJob.objects.create(model=target_model, source_version=source, method="dp2")
    UnlearningJob.objects.filter(pk=queued.pk).update(queued_at=old)
    silent = UnlearningJob.objects.create(model=target_model, source_version=source, method="dp2",
                                          status=JobStatus.RUNNING, attempts=1, heartbeat_at=old)
    dead = UnlearningJob.objects.create(model=target_model, source_version=source, method="dp2",
                                        status=JobStatus.RUNNING, attempts=settings.JOB_MAX_ATTEMPTS,
                                        heartbeat_at=old)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        out = services.jobs_requeue_stale()
    assert out == {"resent": 1, "requeued": 1, "failed": 1}
    assert len(callbacks) == 2  # two task messages: the resent queued job and the re-queued one
    assert UnlearningJob.objects.get(pk=silent.pk).status == JobStatus.QUEUED
    dead.refresh_from_db()
    assert dead.status == JobStatus.FAILED and "gave up after 3 attempts" in dead.error
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.jobs_requeue_stale() == {"requeued": 0, "failed": 0}
    assert callbacks == []
