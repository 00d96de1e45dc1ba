from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from .api.certificates import well_known_keys
from .health import healthz

handler400 = "requests_app.portal.errors.bad_request"  # branded pages with the view's message (issue 21 item 8)
handler403 = "requests_app.portal.errors.permission_denied"
handler404 = "requests_app.portal.errors.page_not_found"
handler500 = "requests_app.middleware.server_error"  # "database is locked" → 503 (issue 13 item 10)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path(".well-known/erasure-certificate-keys.json", well_known_keys, name="well-known-certificate-keys"),
    path("api/v1/", include("requests_app.api.urls")),
    path("", include("requests_app.portal.urls")),
]

if settings.BENCH_HELLO_ENDPOINT:  # bench/intake_load.py: the floor of the stack (middleware, no DRF, no database)
    urlpatterns.insert(0, path("bench/hello/", lambda request: HttpResponse(b"hello", content_type="text/plain")))
