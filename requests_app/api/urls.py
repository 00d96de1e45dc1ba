from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from . import audit, certificates, onboarding, views

router = DefaultRouter()
router.register("tickets", views.TicketViewSet, basename="ticket")
router.register("jobs", views.JobViewSet, basename="job")
router.register("certificates", views.CertificateViewSet, basename="certificate")
router.register("audit-events", audit.AuditEventViewSet, basename="audit-event")
router.register("corpora", onboarding.CorpusViewSet, basename="corpus")
router.register("models", onboarding.TargetModelViewSet, basename="target-model")
router.register("preparations", onboarding.PreparationViewSet, basename="preparation")

urlpatterns = [
    path("certificates/verify/", certificates.CertificateVerifyView.as_view(), name="certificate-verify"),
    path("certificates/keys/", certificates.CertificateKeysView.as_view(), name="certificate-keys"),
    path("me/", views.MeView.as_view(), name="me"),
    path("reports/ccpa/", views.CcpaReportView.as_view(), name="report-ccpa"),
    path("deadlines/", views.DeadlinesView.as_view(), name="deadlines"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema", template_name="api/swagger_ui.html"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
    path("", include(router.urls)),
]
