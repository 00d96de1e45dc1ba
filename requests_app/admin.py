"""Django admin: a read-only window on workflow state (issue 13 item 8).

Tickets, jobs, model versions, evaluation reports, certificates, target models (their artifacts and
privacy ledgers back the certificate) and the audit trail cannot be added, changed or deleted here:
every state change goes through ``requests_app.services`` (compare-and-set + audit event), i.e. the
REST API, the portal or the management commands. Corpora, data subjects and webhooks stay editable
except for the fields that identify content (digests, counts).
"""
from django.contrib import admin

from . import models


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only: no add, change or delete (the change form renders every field read-only)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(models.RemovalTicket)
class RemovalTicketAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "status", "jurisdiction", "received_at", "due_at")
    list_filter = ("status", "jurisdiction")
    search_fields = ("public_id",)
    exclude = ("evidence_ciphertext", "identity_code_sha256")


@admin.register(models.UnlearningJob)
class UnlearningJobAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "method", "status", "attempts", "queued_at", "finished_at")
    list_filter = ("status", "method")


@admin.register(models.Certificate)
class CertificateAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "key_id", "issued_at")


@admin.register(models.ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ("id", "model", "role", "sequence", "is_serving", "weights_sha256")


@admin.register(models.EvaluationReport)
class EvaluationReportAdmin(ReadOnlyAdmin):
    list_display = ("id", "job", "role", "passed", "created_at")


@admin.register(models.TargetModel)
class TargetModelAdmin(ReadOnlyAdmin):
    list_display = ("name", "architecture", "corpus", "created_at")


@admin.register(models.TrainingCorpus)
class TrainingCorpusAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "record_count", "created_at")
    readonly_fields = ("kind", "artifact_uri", "content_sha256", "record_count")

    def has_delete_permission(self, request, obj=None):
        return False


for m in (models.DataSubject, models.WebhookEndpoint, models.WebhookDelivery):
    admin.site.register(m)


@admin.register(models.AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "timestamp", "actor", "verb", "object_type", "object_id")


@admin.register(models.MethodCalibration)
class MethodCalibrationAdmin(ReadOnlyAdmin):
    list_display = ("model", "method", "hyperparameters", "calibration", "updated_at")
