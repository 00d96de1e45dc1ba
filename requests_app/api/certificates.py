"""Public certificate endpoints: the published keys and strict verification (issue 12 item 6).

- ``GET /api/v1/certificates/keys/`` and ``GET /.well-known/erasure-certificate-keys.json``:
  the key set (``evaluation.certificate_keys``: key ids, algorithm, PEM and raw public keys,
  validity, status current/retired). Public, no authentication.
- ``POST /api/v1/certificates/verify/``: the raw request body is parsed with the strict parser
  (``evaluation.strict_json``): not JSON, duplicate keys, NaN/Infinity or non-canonical numbers
  → 400 ``{"valid": false, "reason"}``; otherwise 200 with the verification result (an unknown
  key, a bad signature or a key used outside its validity is ``valid: false`` with the reason).
"""
from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluation.certificate import parse_document
from evaluation.certificate_keys import KeySetError
from evaluation.strict_json import StrictJSONError

from ..certificate_keys import keys_document
from ..certificates import certificate_verify_document
from . import serializers as s

KEYS_CACHE_SECONDS = 300


def _keys_or_error() -> tuple[dict, int]:
    try:
        return keys_document(), 200
    except KeySetError as exc:
        return {"detail": f"the published key set is unusable: {exc}"}, 503


class CertificateKeysView(APIView):
    """The issuer's published certificate keys (current and retired), for verification anywhere."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
    def get(self, request):
        body, status = _keys_or_error()
        response = Response(body, status=status)
        if status == 200:
            response["Cache-Control"] = f"public, max-age={KEYS_CACHE_SECONDS}"
        return response


@require_GET
def well_known_keys(request):
    """``/.well-known/erasure-certificate-keys.json`` (RFC 8615 well-known location)."""
    body, status = _keys_or_error()
    response = JsonResponse(body, status=status, json_dumps_params={"indent": 2, "sort_keys": True})
    if status == 200:
        response["Cache-Control"] = f"public, max-age={KEYS_CACHE_SECONDS}"
        response["Access-Control-Allow-Origin"] = "*"
    return response


class CertificateVerifyView(APIView):
    """Anyone may check a certificate's signature and key against the published keys."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(request=s.CertificateVerifySerializer,
                   responses={200: OpenApiTypes.OBJECT,
                              400: OpenApiResponse(OpenApiTypes.OBJECT, description="not strict JSON")})
    def post(self, request):
        try:
            document = parse_document(request.body, max_depth=settings.JSON_MAX_DEPTH)
        except StrictJSONError as exc:
            return Response({"valid": False, "reason": f"malformed JSON: {exc.reason}"}, status=400)
        result = certificate_verify_document(document)
        payload = document.get("payload") if isinstance(document.get("payload"), dict) else {}
        document_type = {"erasure-certificate/1": "erasure_certificate",
                         "suppression-notice/1": "suppression_notice"}.get(payload.get("schema"))
        # a document without the fields of a certificate is bad input (400), a wrong signature is an answer (200)
        status = 400 if str(result.reason).startswith("malformed") else 200
        return Response({**result.to_dict(), "document_type": document_type if result.valid else None}, status=status)
