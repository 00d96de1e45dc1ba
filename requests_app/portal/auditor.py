"""The auditor's dashboard pages (issue 21 item 10): the audit trail with filters and exports, the
verification of the verifiable log (``requests_app.audit_log``, RFC 6962 Merkle tree with signed
tree heads), the CCPA regulations §7102 report for a period, and the published signing keys.

Readable by auditors and the legal team (as the API's ``IsAuditorOrLegal``); every page reads only.
"""
from __future__ import annotations

import datetime as dt
import functools
import json

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import selectors
from .dashboard import APPROVER, AUDITOR, REVIEWER, _has, staff_required
from .presentation import VERB_LABELS, page
from .staff_forms import AuditFilterForm, PeriodForm, day_bounds

PAGE_SIZE = 50
OBJECT_PAGES = {"RemovalTicket": "portal:dashboard_request", "UnlearningJob": "portal:dashboard_job",
                "Certificate": "portal:dashboard_certificate"}


def auditor_required(view):
    @staff_required
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not _has(request.user, AUDITOR, REVIEWER, APPROVER):
            raise PermissionDenied(_("The audit pages are for auditors and the legal team."))
        return view(request, *args, **kwargs)
    return wrapped


def _change_text(before, after) -> str:
    """A one-line reading of an event's change: ``status: a → b`` and up to three other fields."""
    before, after = before or {}, after or {}
    parts = []
    if "status" in after:
        parts.append(f"status: {before.get('status', '—')} → {after['status']}")
    for key, value in after.items():
        if key == "status" or len(parts) >= 4:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{key}: {text[:60]}{'…' if len(text) > 60 else ''}")
    return "; ".join(parts)


def _filters(request):
    verbs, types = selectors.audit_verbs_and_types()
    form = AuditFilterForm(request.GET or None, verbs=[(v, f"{VERB_LABELS.get(v, v)} ({v})") for v in verbs],
                           object_types=types)
    values = {}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        start, end = data.get("start"), data.get("end")
        values = {"object_id": data["object_id"], "object_type": data["object_type"], "actor": data["actor"],
                  "verb": data["verb"],
                  "start": day_bounds(start, start)[0] if start else None,
                  "end": day_bounds(end, end)[1] if end else None}
    return form, values


def _export_query(request) -> str:
    """The page's filters as a query string for the export links (without the page number)."""
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@auditor_required
def audit_trail(request):
    from django.urls import reverse

    form, values = _filters(request)
    from ..models import AuditEvent

    # invalid filters (e.g. an impossible date): show nothing rather than everything
    events = AuditEvent.objects.none() if form.errors else selectors.audit_events_filtered(**values)
    pages = Paginator(events, PAGE_SIZE)
    current = pages.get_page(request.GET.get("page"))
    rows = []
    for e in current.object_list:
        name = OBJECT_PAGES.get(e.object_type)
        link = None
        if name:
            try:
                link = reverse(name, args=[e.object_id])
            except Exception:  # noqa: BLE001 - a non-UUID id (older rows): no link
                link = None
        rows.append({"event": e, "label": VERB_LABELS.get(e.verb, e.verb), "link": link,
                     "change": _change_text(e.before, e.after)})
    query = _export_query(request)
    return page(request, "dashboard/audit_trail.html", {
        "form": form, "rows": rows, "page_obj": current, "total": pages.count, "query": query,
    })


@auditor_required
def audit_export(request, fmt: str):
    from django.http import Http404

    from ..api.audit import audit_export_response

    if fmt not in ("csv", "json"):
        raise Http404(_("Exports are CSV or JSON."))
    form, values = _filters(request)
    if form.errors:
        return page(request, "dashboard/audit_trail.html", {"form": form, "rows": [], "total": 0}, status=400)
    return audit_export_response(selectors.audit_events_filtered(**values), as_json=fmt == "json")


@auditor_required
def audit_verify(request):
    from ..audit import audit_chain_verify
    from ..audit_log import tree_head_latest

    result = audit_chain_verify()
    head = tree_head_latest()
    return page(request, "dashboard/audit_verify.html", {
        "result": result, "head": head, "checked_at": timezone.now(),
        "head_json": json.dumps(head.as_document(), indent=1) if head else "",
    })


@auditor_required
def ccpa_report(request):
    today = timezone.now().date()
    initial = {"start": today - dt.timedelta(days=365), "end": today}
    form = PeriodForm(request.GET or initial)
    report, status = None, 200
    if form.is_valid():
        start, end = day_bounds(form.cleaned_data["start"], form.cleaned_data["end"])
        report = selectors.ccpa_metrics(start=start, end=end)
        report["api_query"] = f"start={form.cleaned_data['start']}&end={form.cleaned_data['end']}"
    else:
        status = 400
    return page(request, "dashboard/ccpa_report.html", {"form": form, "report": report}, status=status)


@auditor_required
def published_keys(request):
    from evaluation.certificate_keys import KeySetError

    from ..certificate_keys import keys_document

    try:
        document, problem = keys_document(), ""
    except KeySetError as exc:
        document, problem = {"keys": []}, str(exc)
    return page(request, "dashboard/keys.html", {"document": document, "problem": problem})
