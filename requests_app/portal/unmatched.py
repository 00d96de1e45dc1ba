"""Dashboard actions on a request naming nobody found (issue 21 item 3): link the data subject by
hand, or answer "no data held". Thin: a form, one service call, a redirect."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import services
from ..workflow import TransitionError
from . import staff_forms
from .dashboard import APPROVER, REVIEWER, _detail_context, _has, _ticket, staff_required
from .presentation import page, status_label


def _legal_only(request):
    if not _has(request.user, REVIEWER, APPROVER):
        raise PermissionDenied(_("Only the legal team can answer a request."))


@staff_required
@require_POST
def request_no_data(request, public_id):
    ticket = _ticket(request, public_id)
    _legal_only(request)
    form = staff_forms.NoDataForm(request.POST)
    if form.is_valid():
        try:
            services.ticket_confirm_no_data(ticket=ticket, actor=request.user, note=form.cleaned_data["note"])
        except TransitionError as exc:
            messages.error(request, _("Not answered: the request is now '%(status)s'.")
                           % {"status": status_label(exc.current_status or "")})
        except services.ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Answered: no data held. The requester was e-mailed."))
            return redirect("portal:dashboard_request", public_id=ticket.public_id)
    if not form.errors:
        return redirect("portal:dashboard_request", public_id=ticket.public_id)
    return page(request, "dashboard/request_detail.html", _detail_context(request, ticket, no_data_form=form),
                status=400)


@staff_required
@require_POST
def request_link_subject(request, public_id):
    ticket = _ticket(request, public_id)
    _legal_only(request)
    form = staff_forms.SubjectLinkForm(request.POST)
    if form.is_valid():
        raw = form.cleaned_data["subject"].strip()
        try:
            subject = _subject_from(raw)
            services.ticket_subject_resolve(ticket=ticket, actor=request.user, subject=subject)
        except services.ServiceError as exc:
            form.add_error("subject", str(exc))
        else:
            messages.success(request, _("Linked to %(name)s. Review the records below.") % {"name": subject.display_name})
            return redirect("portal:dashboard_request", public_id=ticket.public_id)
    return page(request, "dashboard/request_detail.html", _detail_context(request, ticket, link_form=form),
                status=400)


def _subject_from(raw: str):
    import uuid

    try:
        return services.subject_lookup(public_id=str(uuid.UUID(raw)))
    except ValueError:
        return services.subject_lookup(name=raw)
