"""Signed webhooks: fan-out in the caller's transaction, delivery with HMAC-SHA256."""
from __future__ import annotations

import hashlib
import hmac

from django.db import transaction
from django.utils import timezone

# --- webhooks ---------------------------------------------------------------------------------

def webhook_event_emit(*, event: str, payload: dict) -> None:
    """Record one delivery per subscribed endpoint in the caller's transaction (the outbox: a
    delivery exists iff the change committed); after commit one message on the ``webhooks`` queue
    fans them out (``webhook_fan_out_task``), so the request publishes once whatever the number of
    subscribers. Nothing is written or sent when no active endpoint takes ``event``."""
    from ..models import WebhookDelivery, WebhookEndpoint

    endpoints = [e for e in WebhookEndpoint.objects.filter(active=True) if not e.events or event in e.events]
    if not endpoints:
        return
    body = {"event": event, "occurred_at": timezone.now().isoformat(), "data": payload}
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(endpoint=endpoint, event=event, payload=body) for endpoint in endpoints])
    ids = [d.pk for d in deliveries]

    def send():
        from ..tasks import webhook_fan_out_task

        webhook_fan_out_task.delay(ids)

    transaction.on_commit(send)


def webhook_signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the exact request body (RFC 2104), sent as ``X-Signature-SHA256``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_deliver(*, delivery_id: int, timeout: float = 10.0) -> bool:
    """POST one delivery; records the attempt. Returns True when delivered (2xx).

    Raises nothing on HTTP errors; the caller (a Celery task with back-off) retries on False.
    """
    import json as _json
    import urllib.error
    import urllib.request

    from ..models import WebhookDelivery

    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if delivery.status == WebhookDelivery.STATUS_DELIVERED:
        return True
    body = _json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    request = urllib.request.Request(delivery.endpoint.url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-Event": delivery.event,
        "X-Delivery-Id": str(delivery.pk),
        "X-Signature-SHA256": webhook_signature(delivery.endpoint.secret, body),
    })
    code, error = None, ""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 — operator-configured URL
            code = response.status
    except urllib.error.HTTPError as exc:
        code, error = exc.code, str(exc)
    except (urllib.error.URLError, OSError) as exc:
        error = str(exc)
    ok = code is not None and 200 <= code < 300
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=delivery.attempts + 1, last_status_code=code, last_error=error[:2000],
        status=WebhookDelivery.STATUS_DELIVERED if ok else WebhookDelivery.STATUS_PENDING,
        delivered_at=timezone.now() if ok else None,
    )
    return ok


def webhook_mark_failed(*, delivery_id: int) -> None:
    from ..models import WebhookDelivery

    WebhookDelivery.objects.filter(pk=delivery_id).exclude(status=WebhookDelivery.STATUS_DELIVERED).update(
        status=WebhookDelivery.STATUS_FAILED
    )
