"""Branded error pages (issue 21 item 8): the site header, the view's own message and a way back.

Django calls these as ``handler400``/``handler403``/``handler404`` (``requests_app/urls.py``); the
500 page is the template ``500.html``, rendered by Django without a request (no database access,
no user). Paths under ``/api/`` get DRF-style JSON ``{"detail": ...}`` instead of HTML.
"""
from __future__ import annotations

from django.core.exceptions import BadRequest
from django.http import JsonResponse
from django.utils.translation import gettext_lazy as _

from .presentation import page

TITLES = {
    400: _("The request could not be understood"),
    403: _("You do not have access to this page"),
    404: _("Page not found"),
}


def _message(exception, *, status: int) -> str:
    """The message the view gave (``Http404("No such request.")``), if it is plain text.

    A URL that matched nothing (``Resolver404``, whose argument is a dict) and Django's own
    ``SuspiciousOperation`` texts (host headers, cookies) are not shown.
    """
    if exception is None or not exception.args:
        return ""
    if status == 400 and not isinstance(exception, BadRequest):
        return ""
    message = exception.args[0]
    return str(message) if isinstance(message, str) else ""


def _error(request, exception, status: int):
    message = _message(exception, status=status)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message or str(TITLES[status])}, status=status)
    return page(request, f"errors/{status}.html", {"title": TITLES[status], "message": message, "status_code": status}, status=status)


def bad_request(request, exception=None):
    return _error(request, exception, 400)


def permission_denied(request, exception=None):
    return _error(request, exception, 403)


def page_not_found(request, exception=None):
    return _error(request, exception, 404)
