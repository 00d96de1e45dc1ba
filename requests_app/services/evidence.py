"""Evidence retention: purge of forget-set text after certification."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..audit import audit_event_record
from ..models import (
    RemovalTicket,
    TicketStatus,
    TrainingRecord,
)


def evidence_purge_expired(*, now=None) -> int:
    """Purge forget-set text after certification + ``FORGET_TEXT_RETENTION_DAYS`` (DESIGN §8).

    Blanks the encrypted evidence of certified tickets and the text of records forgotten by their
    jobs, keeping every sha256 digest; also the evidence of tickets withdrawn or denied more than
    the retention period ago (GDPR Art. 5(1)(e) storage limitation). Returns the number of tickets
    purged.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.FORGET_TEXT_RETENTION_DAYS)
    purged = 0
    for ticket in RemovalTicket.objects.filter(status=TicketStatus.CERTIFIED, evidence_purged_at__isnull=True,
                                               jobs__certificate__issued_at__lte=cutoff).distinct():
        with transaction.atomic():
            RemovalTicket.objects.filter(pk=ticket.pk).update(evidence_ciphertext="", evidence_purged_at=now)
            records = TrainingRecord.objects.filter(pk__in=ticket.resolved_record_ids, text_purged_at__isnull=True,
                                                    forgotten_by__isnull=False)
            n = records.update(text="", question="", answer="", features=None, text_purged_at=now)
            audit_event_record(actor="system", verb="ticket.evidence_purged", obj=ticket,
                               after={"records_purged": n, "evidence_sha256": ticket.evidence_sha256})
            purged += 1
    purged += _evidence_purge_closed(now=now, cutoff=cutoff)
    return purged


def _evidence_purge_closed(*, now, cutoff) -> int:
    """Blank the owner's evidence text of tickets withdrawn or denied before ``cutoff`` (the
    closing audit event's time). Their training records were never forgotten, so their text stays
    (it is still training data); only the uploaded evidence goes, its sha256 is kept."""
    from ..models import AuditEvent

    closed = {TicketStatus.WITHDRAWN: "ticket.withdrawn", TicketStatus.DENIED: "ticket.denied"}
    purged = 0
    candidates = RemovalTicket.objects.filter(status__in=list(closed), evidence_purged_at__isnull=True)
    for ticket in candidates.exclude(evidence_ciphertext=""):
        closed_at = (AuditEvent.objects.filter(object_id=str(ticket.public_id), verb=closed[ticket.status])
                     .order_by("-id").values_list("timestamp", flat=True).first())
        if closed_at is None or closed_at > cutoff:
            continue
        with transaction.atomic():
            if RemovalTicket.objects.filter(pk=ticket.pk, evidence_purged_at__isnull=True).update(
                    evidence_ciphertext="", evidence_purged_at=now):
                audit_event_record(actor="system", verb="ticket.evidence_purged", obj=ticket,
                                   after={"records_purged": 0, "evidence_sha256": ticket.evidence_sha256,
                                          "closed_as": ticket.status})
                purged += 1
    return purged
