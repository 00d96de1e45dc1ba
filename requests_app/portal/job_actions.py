"""Staff buttons on the dashboard (issue 21 item 7): hold, release, extend and retry on a request,
cancel on a job. Each calls the same service as the API (``services.ticket_hold`` …) with the
same roles; a refused action re-renders the page with the reason (400/409)."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import services
from ..job_dispatch import jobs_off_request
from ..workflow import TransitionError
from . import staff_forms
from .dashboard import (
    APPROVER,
    OPERATOR,
    REVIEWER,
    _detail_context,
    _has,
    _job,
    _ticket,
    staff_required,
)
from .presentation import page, status_label


def _refused(request, ticket, message: str, status: int = 400):
    messages.error(request, message)
    return page(request, "dashboard/request_detail.html", _detail_context(request, ticket), status=status)


def _form_errors(form) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


def _ticket_action(request, public_id, *, roles, form_class, call, done: str, prefix: str = ""):
    ticket = _ticket(request, public_id)
    if not _has(request.user, *roles):
        raise PermissionDenied(_("Your role cannot do this."))
    form = form_class(request.POST, prefix=prefix or None) if form_class else None
    if form is not None and not form.is_valid():
        return _refused(request, ticket, _form_errors(form))
    try:
        result = call(ticket, form.cleaned_data if form else {})
    except TransitionError as exc:
        return _refused(request, ticket, _("Not done: the request is now '%(status)s'.")
                        % {"status": status_label(exc.current_status or "")}, status=409)
    except services.ServiceError as exc:
        return _refused(request, ticket, str(exc))
    messages.success(request, done)
    if getattr(result, "_meta", None) and result._meta.model_name == "unlearningjob":
        return redirect("portal:dashboard_job", public_id=result.public_id)
    return redirect("portal:dashboard_request", public_id=ticket.public_id)


@staff_required
@require_POST
def request_hold(request, public_id):
    return _ticket_action(request, public_id, roles=(REVIEWER, APPROVER), form_class=staff_forms.ReasonForm,
                          call=lambda t, d: services.ticket_hold(ticket=t, actor=request.user, reason=d["reason"]),
                          done=_("The request is on legal hold."), prefix="hold")


@staff_required
@require_POST
def request_release(request, public_id):
    return _ticket_action(request, public_id, roles=(REVIEWER, APPROVER), form_class=None,
                          call=lambda t, d: services.ticket_release_hold(ticket=t, actor=request.user),
                          done=_("The hold was released."))


@staff_required
@require_POST
def request_extend(request, public_id):
    return _ticket_action(request, public_id, roles=(REVIEWER, APPROVER), form_class=staff_forms.ExtendForm,
                          call=lambda t, d: services.ticket_extend_deadline(ticket=t, actor=request.user,
                                                                            reason=d["reason"], days=d.get("days")),
                          done=_("The deadline was extended; the requester was told why."), prefix="extend")


@staff_required
@require_POST
def request_retry(request, public_id):
    def call(ticket, _data):
        with jobs_off_request():  # embedded mode: the new job runs on the embedded worker
            return services.ticket_retry(ticket=ticket, actor=request.user)

    return _ticket_action(request, public_id, roles=(REVIEWER, APPROVER, OPERATOR), form_class=None, call=call,
                          done=_("A new job was queued."))


@staff_required
@require_POST
def job_cancel(request, public_id):
    job = _job(request, public_id)
    if not _has(request.user, OPERATOR, APPROVER):
        raise PermissionDenied(_("Only ML operators and legal approvers can cancel a job."))
    form = staff_forms.CancelForm(request.POST)
    reason = (form.cleaned_data.get("reason") if form.is_valid() else "") or \
        _("cancelled by %(user)s") % {"user": request.user.get_username()}
    try:
        services.job_cancel(job=job, actor=request.user, reason=reason)
    except TransitionError as exc:
        messages.error(request, _("Not cancelled: the job is already '%(status)s'.")
                       % {"status": status_label(exc.current_status or "")})
    else:
        messages.success(request, _("The job was cancelled; its request can be retried."))
    return redirect("portal:dashboard_job", public_id=job.public_id)
