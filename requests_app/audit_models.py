"""Models of the audit trail's verifiable log (issue 17): Merkle leaves and signed tree heads.
Imported by :mod:`requests_app.models` (the app's model registry)."""
from __future__ import annotations

from django.db import models

from .models import AuditEvent, AuditEventQuerySet


class AuditLeaf(models.Model):
    """One leaf of the audit log's Merkle tree: event ``event_id`` at ``leaf_index`` (RFC 6962 §2.1).

    Written by the sealer only (``audit_log.audit_log_seal``), append-only like the events (ORM and,
    on PostgreSQL, the trigger of migration 0008). ``event`` has no database foreign key on purpose:
    a deleted event must leave its leaf behind so that the verifier can name it.
    """

    leaf_index = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(AuditEvent, on_delete=models.DO_NOTHING, db_constraint=False, related_name="leaf")
    leaf_hash = models.CharField(max_length=64)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["leaf_index"]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("audit log leaves are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit log leaves are append-only")


class SignedTreeHead(models.Model):
    """A signed tree head of the audit log (schema ``audit-tree-head/1``, ``evaluation.audit_log``):
    tree size, root hash, time, Ed25519 signature with the certificate keys. ``frontier`` holds the
    roots of the perfect subtrees of the size's binary decomposition (hex, largest first), so that
    the next seal appends without reading old leaves. Append-only."""

    tree_size = models.BigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)
    issued_at = models.DateTimeField()
    signed_payload = models.TextField()
    signature = models.TextField()
    key_id = models.CharField(max_length=64)
    algorithm = models.CharField(max_length=16, default="Ed25519")
    frontier = models.JSONField(default=list)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["tree_size"]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("signed tree heads are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("signed tree heads are append-only")

    def as_document(self) -> dict:
        """The signed tree head as published: ``{payload, signature, key_id, algorithm}``."""
        import json

        return {"payload": json.loads(self.signed_payload), "signature": self.signature,
                "key_id": self.key_id, "algorithm": self.algorithm}
