from django.contrib import admin

from . import models

for m in (models.TrainingCorpus, models.DataSubject, models.TargetModel, models.ModelVersion,
          models.RemovalTicket, models.UnlearningJob, models.EvaluationReport, models.Certificate,
          models.WebhookEndpoint, models.WebhookDelivery):
    admin.site.register(m)


@admin.register(models.AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("id", "timestamp", "actor", "verb", "object_type", "object_id")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False
