"""URLs for the error-page tests: the project's URLs plus views that fail on purpose."""
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.urls import include, path

from requests_app.urls import handler400, handler403, handler404, handler500  # noqa: F401


def boom(request):
    raise RuntimeError("secret internal detail")


def bad(request):
    raise BadRequest("The form was sent without its token.")


def suspicious(request):
    raise SuspiciousOperation("internal host header detail")


urlpatterns = [
    path("boom/", boom),
    path("bad/", bad),
    path("suspicious/", suspicious),
    path("", include("requests_app.urls")),
]
