"""The reviewer queue (issue 21 items 16): filters (status, law, deadline, assignee), search by
requester or subject, and bulk assign / legal hold over ticked requests. Reads through
``selectors.tickets_queue``; the bulk actions call ``services.tickets_bulk_*``."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from .. import selectors, services
from .dashboard import APPROVER, CLOSED, REVIEWER, _has, staff_required
from .presentation import deadline_state, page, status_label
from .staff_forms import BulkForm, QueueFilterForm


def _queue_rows(tickets, now) -> list[dict]:
    rows = []
    for t in tickets:
        state = deadline_state(t.due_at, now) if t.status not in CLOSED else "closed"
        rows.append({"ticket": t, "status": status_label(t.status), "deadline": state,
                     "days_left": (t.due_at - now).days})
    return rows


@staff_required
def queue(request):
    team = list(selectors.legal_team_users())
    form = QueueFilterForm(request.GET or None, assignees=team)
    filters = {}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        filters = {"q": data["q"], "status": data["status"], "jurisdiction": data["jurisdiction"],
                   "due": data["due"], "assignee": data["assignee"], "include_closed": data["closed"]}
    now = timezone.now()
    rows = _queue_rows(selectors.tickets_queue(user=request.user, now=now, **filters), now)
    counts = {"overdue": sum(r["deadline"] == "overdue" for r in rows),
              "due_soon": sum(r["deadline"] == "due_soon" for r in rows)}
    can_bulk = _has(request.user, REVIEWER, APPROVER)
    bulk = BulkForm(ticket_choices=[(str(r["ticket"].public_id), "") for r in rows], assignees=team) \
        if can_bulk else None
    return page(request, "dashboard/queue.html", {
        "rows": rows, "counts": counts, "form": form, "bulk": bulk, "filtered": bool(request.GET),
        "show_closed": filters.get("include_closed", False), "here": request.get_full_path(),
    })


@staff_required
@require_POST
def queue_bulk(request):
    if not _has(request.user, REVIEWER, APPROVER):
        raise PermissionDenied(_("Only the legal team can assign or hold requests."))
    team = list(selectors.legal_team_users())
    ids = request.POST.getlist("tickets")
    tickets = list(selectors.tickets_visible_to(request.user).filter(public_id__in=[i for i in ids if len(i) == 36]))
    form = BulkForm(request.POST, ticket_choices=[(str(t.public_id), "") for t in tickets], assignees=team)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}) or not back.startswith("/dashboard"):
        back = "/dashboard/"
    if not form.is_valid():
        for errors in form.errors.values():
            for e in errors:
                messages.error(request, e)
        return redirect(back)
    data = form.cleaned_data
    chosen = [t for t in tickets if str(t.public_id) in set(data["tickets"])]
    if data["action"] == "assign":
        assignee = next((u for u in team if str(u.pk) == data["assignee"]), None)
        result = services.tickets_bulk_assign(tickets=chosen, actor=request.user, assignee=assignee)
        done = ngettext("%(n)d request assigned.", "%(n)d requests assigned.", len(result.done))
    else:
        result = services.tickets_bulk_hold(tickets=chosen, actor=request.user, reason=data["reason"])
        done = ngettext("%(n)d request put on legal hold.", "%(n)d requests put on legal hold.", len(result.done))
    messages.success(request, done % {"n": len(result.done)})
    for ticket, reason in result.refused:
        messages.warning(request, _("Not changed: %(ref)s (%(name)s): %(reason)s")
                         % {"ref": str(ticket.public_id)[:8], "name": ticket.subject_label, "reason": reason})
    return redirect(back)
