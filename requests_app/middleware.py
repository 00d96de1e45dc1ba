"""Request-level guards (issue 13 items 9 and 10); both answer before any view runs or fails.

- :class:`RequestSizeLimitMiddleware`: a body whose ``Content-Length`` is above ``REQUEST_MAX_BYTES``
  is refused with 413 *before* Django reads it (Django's own ``DATA_UPLOAD_MAX_MEMORY_SIZE`` does
  not count uploaded files, which it spools whole to disk first). A missing or malformed length is
  400 for methods with a body; Django's WSGI handler never reads past the declared length.
- :class:`DatabaseLockedMiddleware`: ``OperationalError: database is locked`` (SQLite's busy timeout
  ran out under concurrent writers) becomes 503 with ``Retry-After`` instead of a 500.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import OperationalError
from django.http import HttpResponse, JsonResponse

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def error_response(request, status: int, message: str, **headers) -> HttpResponse:
    """A JSON ``{"detail": message}`` for API clients, plain text for browsers."""
    if _wants_json(request):
        response = JsonResponse({"detail": message}, status=status)
    else:
        response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    for name, value in headers.items():
        response[name.replace("_", "-")] = str(value)
    return response


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = request.META.get("CONTENT_LENGTH") or ""
        if raw:
            try:
                length = int(raw)
                if length < 0:
                    raise ValueError(raw)
            except ValueError:
                return error_response(request, 400, "malformed Content-Length header")
            limit = settings.REQUEST_MAX_BYTES
            if length > limit:
                return error_response(
                    request, 413,
                    f"request body of {length} bytes is above the limit of {limit} bytes; attached "
                    f"evidence text may be at most {settings.EVIDENCE_MAX_BYTES} bytes",
                )
        return self.get_response(request)


def is_database_locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc).lower()


class DatabaseLockedMiddleware:
    """503 + ``Retry-After`` for a database lock that outlived the busy timeout (SQLite only)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_database_locked(exception):
            log.warning("database is locked: %s %s answered 503", request.method, request.path)
            return database_locked_response(request)
        return None


def database_locked_response(request) -> HttpResponse:
    return error_response(request, 503, "the service is busy (database locked); retry in a moment",
                          Retry_After=RETRY_AFTER_SECONDS)


def server_error(request, *args, **kwargs):
    """``handler500``: a lock raised outside a view (session save, middleware) is 503 too; else Django's 500."""
    import sys

    from django.views.defaults import server_error as django_server_error

    exc = sys.exc_info()[1]
    if exc is not None and is_database_locked(exc):
        log.warning("database is locked outside the view: %s %s answered 503", request.method, request.path)
        return database_locked_response(request)
    return django_server_error(request, *args, **kwargs)
