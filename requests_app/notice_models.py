"""The data owner's outcome notices (issue 21 item 2); imported by ``requests_app.models``."""
from __future__ import annotations

from django.db import models


class OwnerNotice(models.Model):
    """An e-mail telling the data owner an outcome of their request (GDPR Art. 12(3)/(4); CCPA
    §1798.105 response), queued in the transaction of the change it reports and sent after commit
    by ``tasks.owner_notice_send_task`` with retries (``services.notices``)."""

    class Kind(models.TextChoices):
        REVIEW = "review", "Review started"
        EXTENSION = "extension", "Deadline extended"
        APPROVAL = "approval", "Approved"
        DENIAL = "denial", "Declined"
        WITHDRAWAL = "withdrawal", "Withdrawn"
        FAILURE = "failure", "Removal failed its checks"
        CERTIFICATION = "certification", "Certificate issued"
        NO_DATA = "no_data", "No data held"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Could not be sent"

    ticket = models.ForeignKey("requests_app.RemovalTicket", on_delete=models.PROTECT, related_name="notices")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    to_email = models.EmailField()
    subject = models.CharField(max_length=200)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["ticket", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} notice for ticket {self.ticket_id} ({self.status})"
