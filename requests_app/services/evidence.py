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
    jobs, keeping every sha256 digest. Returns the number of tickets purged.
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
            n = records.update(text="", question="", answer="", text_purged_at=now)
            audit_event_record(actor="system", verb="ticket.evidence_purged", obj=ticket,
                               after={"records_purged": n, "evidence_sha256": ticket.evidence_sha256})
            purged += 1
    return purged
