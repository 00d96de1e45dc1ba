"""API error mapping: service exceptions → HTTP status with a message."""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .. import services
from ..middleware import RETRY_AFTER_SECONDS, is_database_locked
from ..workflow import TransitionError


def exception_handler(exc, context):  # noqa: C901
    """DRF's handler plus: 503 + Retry-After for "database is locked", 413 body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, 409 transition (with current status) or idempotency key in flight, 422 idempotency conflict, 413 too
    large, 403 policy, 400 other service errors."""
    if is_database_locked(exc):
        return Response({"detail": "the service is busy (database locked); retry in a moment"}, status=503,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": f"request body above the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; "
                                   f"attached evidence text may be at most {settings.EVIDENCE_MAX_BYTES} bytes"},
                        status=413)
    if isinstance(exc, TransitionError):
        return Response({"detail": str(exc), "current_status": exc.current_status}, status=409)
    if isinstance(exc, services.IdempotencyInFlight):
        return Response({"detail": str(exc)}, status=409, headers={"Retry-After": "1"})
    if isinstance(exc, services.IdempotencyConflict):
        return Response({"detail": str(exc)}, status=422)
    if isinstance(exc, services.PayloadTooLarge):
        return Response({"detail": str(exc)}, status=413)
    if isinstance(exc, services.PermissionDeniedError):
        return Response({"detail": str(exc)}, status=403)
    if isinstance(exc, services.ServiceError):
        return Response({"detail": str(exc)}, status=400)
    return drf_exception_handler(exc, context)
