"""The audit trail API (auditors and the legal team): events, export, and the verifiable log
(signed tree head, inclusion and consistency proofs, verification; ``requests_app.audit_log``)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from . import serializers as s
from .permissions import IsAuditorOrLegal

EXPORT_FIELDS = ["id", "timestamp", "actor", "verb", "object_type", "object_id", "before", "after", "prev_hash", "hash"]


def audit_export_response(queryset, *, as_json: bool):
    """The events of ``queryset`` as a download, oldest first: JSON (a list of the API's event
    objects) or CSV (one row per event, ``before``/``after`` as JSON text). Used by the API's
    ``export`` and the dashboard's audit page (issue 21 item 10)."""
    import csv
    import io
    import json

    from django.http import HttpResponse

    rows = s.AuditEventSerializer(queryset.order_by("id"), many=True).data
    if as_json:
        response = HttpResponse(json.dumps(rows, default=str, indent=1), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.json"'
        return response
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        writer.writerow([json.dumps(row[f]) if isinstance(row[f], (dict, list)) else row[f] for f in EXPORT_FIELDS])
    response = HttpResponse(out.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
    return response


def _int_param(request, name: str, *, required: bool) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise ValueError(f"'{name}' is required")
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError(f"'{name}' must be a non-negative integer")
    return int(raw)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail, sealed into a Merkle log with signed tree heads (RFC 6962 style).
    ``export`` gives CSV or JSON; ``tree-head``, ``consistency``, ``{id}/inclusion`` give proofs;
    ``verify`` checks the trail against the signed heads."""

    serializer_class = s.AuditEventSerializer
    permission_classes = [IsAuthenticated, IsAuditorOrLegal]
    filterset_fields = ["verb", "object_type", "object_id", "actor"]

    def get_queryset(self):
        from ..models import AuditEvent

        return AuditEvent.objects.order_by("id")

    @extend_schema(parameters=[OpenApiParameter("as", str, enum=["csv", "json"])], responses={200: dict})
    @action(detail=False, methods=["get"])
    def export(self, request):
        """The whole (filtered) trail as a download: ``?as=csv`` (default) or ``?as=json``; any other
        format is a 400 (it silently gave CSV before: fresh-user trial)."""
        fmt = request.query_params.get("as", "csv")
        if fmt not in ("csv", "json"):
            return Response({"detail": f"as must be 'csv' or 'json', got {fmt[:20]!r}"}, status=400)
        return audit_export_response(self.filter_queryset(self.get_queryset()), as_json=fmt == "json")

    @extend_schema(request=dict, responses={200: dict})
    @action(detail=False, methods=["get", "post"])
    def verify(self, request):
        """Check every event and leaf against the signed tree heads and the heads embedded in issued
        certificates; ``POST {"tree_heads": [<signed tree head>, ...]}`` adds heads an auditor kept.
        Reports missing leaves, missing or changed events and the heads the log no longer matches."""
        from ..audit import audit_chain_verify

        anchors = []
        if request.method == "POST":
            anchors = request.data.get("tree_heads", []) if isinstance(request.data, dict) else None
            if not isinstance(anchors, list) or not all(isinstance(a, dict) for a in anchors) or len(anchors) > 100:
                return Response({"detail": "'tree_heads' must be a list of at most 100 signed tree head objects"},
                                status=status.HTTP_400_BAD_REQUEST)
        return Response(audit_chain_verify(anchors=anchors).to_dict())

    @extend_schema(responses={200: dict})
    @action(detail=False, methods=["get"], url_path="tree-head")
    def tree_head(self, request):
        """The latest signed tree head (404 before the first seal)."""
        from ..audit_log import tree_head_latest

        head = tree_head_latest()
        if head is None:
            return Response({"detail": "the audit log has no signed tree head yet"}, status=status.HTTP_404_NOT_FOUND)
        return Response(head.as_document())

    @extend_schema(parameters=[OpenApiParameter("first", int), OpenApiParameter("second", int)],
                   responses={200: dict})
    @action(detail=False, methods=["get"])
    def consistency(self, request):
        """RFC 6962 §2.1.2 consistency proof from tree size ``first`` to ``second`` (default: latest)."""
        from ..audit_log import AuditLogError, audit_consistency_proof

        try:
            first = _int_param(request, "first", required=True)
            second = _int_param(request, "second", required=False)
            return Response(audit_consistency_proof(first, second))
        except (ValueError, AuditLogError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)

    @extend_schema(parameters=[OpenApiParameter("tree_size", int)], responses={200: dict})
    @action(detail=True, methods=["get"])
    def inclusion(self, request, pk=None):
        """RFC 6962 §2.1.1 inclusion proof of this event in the tree of ``tree_size`` (default: latest)."""
        from ..audit import audit_event_leaf
        from ..audit_log import AuditLogError, audit_inclusion_proof

        event = self.get_object()
        try:
            proof = audit_inclusion_proof(event, tree_size=_int_param(request, "tree_size", required=False))
        except (ValueError, AuditLogError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response({**proof, "leaf": audit_event_leaf(event)})
