"""The legal team's and operators' dashboard (groups legal_reviewer, legal_approver, ml_operator,
auditor). Anonymous users are sent to sign in; signed-in data owners get 403."""
from __future__ import annotations

import functools

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import selectors, services
from ..job_dispatch import jobs_off_request
from ..models import (
    Certificate,
    EvaluationReport,
    ModelVersion,
    TargetModel,
    TicketStatus,
    UnlearningJob,
)
from ..workflow import TransitionError, sources_for
from . import forms, labels
from .lineage import lineage_points, sustainability_png
from .presentation import deadline_state, page, status_label, ticket_timeline
from .views import certificate_html_response, certificate_json_response, job_status_json

REVIEWER, APPROVER, OPERATOR, AUDITOR = "legal_reviewer", "legal_approver", "ml_operator", "auditor"
CLOSED = (TicketStatus.CERTIFIED, TicketStatus.DENIED, TicketStatus.WITHDRAWN, TicketStatus.NO_DATA)


def _has(user, *roles) -> bool:
    return bool(user.is_superuser or selectors.user_roles(user) & set(roles))


def staff_required(view):
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not selectors.user_is_staff_role(request.user):
            raise PermissionDenied(_("The dashboard is for the legal team and ML operators only."))
        return view(request, *args, **kwargs)
    return wrapped


def _ticket(request, public_id):
    ticket = selectors.tickets_visible_to(request.user).filter(public_id=public_id).first()
    if ticket is None:
        raise Http404(_("No such request."))
    return ticket


def _roles_context(user) -> dict:
    return {"can_review": _has(user, REVIEWER, APPROVER), "can_approve": _has(user, APPROVER)}


def _family(ticket) -> str:
    """The model family of the ticket's target model (the default model's; causal_lm without one)."""
    model = ticket.target_model or selectors.model_default()
    return getattr(model, "family", None) or "causal_lm"


def _erasing_methods(ticket) -> list[str]:
    """Methods that change the weights and serve the ticket's model family (DESIGN §11, issue 19)."""
    from unlearning_engine import available_methods

    family = _family(ticket)
    return [m for m in available_methods(family) if services.method_changes_weights(m, family)]


def method_options(ticket, form) -> dict:
    """The approve screen's method list (issue 21 item 6): per method its name, the registry's
    one-line description, whether it can yield an erasure certificate (it changes the weights) and
    the mean compute time of this model's past succeeded jobs of that method."""
    from django.db.models import Avg, Count

    from unlearning_engine import available_methods

    model = ticket.target_model or selectors.model_default()
    family = _family(ticket)
    past = {}
    if model is not None:
        past = {row["method"]: row for row in UnlearningJob.objects.filter(
            model=model, status="succeeded", device_seconds__isnull=False).values("method").annotate(
            mean=Avg("device_seconds"), n=Count("id"))}
    rows = []
    for widget in form["method"].subwidgets:
        name = widget.data["value"]
        rows.append({"widget": widget, "name": name, "label": labels.method_label(name),
                     "description": labels.method_description(name, family), "certifies": True,
                     "mean_seconds": (past.get(name) or {}).get("mean"), "n_jobs": (past.get(name) or {}).get("n", 0)})
    not_offered = [{"name": m, "label": labels.method_label(m), "description": labels.method_description(m, family)}
                   for m in available_methods(family) if not services.method_changes_weights(m, family)]
    return {"rows": rows, "not_offered": not_offered, "model": model}


def _detail_context(request, ticket, *, approve_form=None, deny_form=None, no_data_form=None,
                    link_form=None) -> dict:
    from . import staff_forms

    records = selectors.ticket_resolution(ticket=ticket) if ticket.status == TicketStatus.IN_REVIEW else []
    ctx = {
        "ticket": ticket,
        "status": status_label(ticket.status),
        "deadline": deadline_state(ticket.due_at),
        "timeline": ticket_timeline(ticket, viewer=request.user, staff=True),
        "jobs": ticket.jobs.order_by("-id"),
        "notices": ticket.notices.order_by("created_at", "id"),
        "certificate": Certificate.objects.filter(job__tickets=ticket).order_by("-id").first(),
        **_roles_context(request.user),
    }
    legal = _has(request.user, REVIEWER, APPROVER)
    ctx["actions"] = _staff_actions(request.user, ticket)
    if ticket.subject_id is None and ticket.status not in CLOSED and legal:  # issue 21 item 3
        ctx["link_form"] = link_form or staff_forms.SubjectLinkForm()
    ctx["records_found"] = len(records)
    if ticket.status == TicketStatus.IN_REVIEW and legal and not records:  # nothing to remove: answer it
        ctx["no_data_form"] = no_data_form or staff_forms.NoDataForm()
    if ticket.status == TicketStatus.IN_REVIEW and ticket.subject_id is not None:
        readonly = not legal  # auditors and operators see it read-only
        approve_form = approve_form or forms.ApproveForm(methods=_erasing_methods(ticket), records=records,
                                                         readonly=readonly)
        ctx["methods"] = method_options(ticket, approve_form)
        ctx["readonly"] = readonly
        by_id = {r.pk: r for r in records}
        ctx["record_rows"] = [
            {"record": by_id.get(int(w.data["value"])), "widget": w,
             "provenance": _("linked") if by_id.get(int(w.data["value"])) and by_id[int(w.data["value"])].subject_id == ticket.subject_id
             else _("content match")}
            for w in approve_form["records"].subwidgets
        ]
        ctx["approve_form"] = approve_form
    if ticket.status not in CLOSED and ticket.status not in (
        TicketStatus.APPROVED, TicketStatus.QUEUED, TicketStatus.RUNNING, TicketStatus.EVALUATING, TicketStatus.FAILED
    ):
        ctx["deny_form"] = deny_form or forms.DenyForm(jurisdiction=ticket.jurisdiction)
    return ctx


def _staff_actions(user, ticket) -> dict:
    """The staff buttons the request offers now (issue 21 item 7), by role and state."""
    from . import staff_forms

    legal = _has(user, REVIEWER, APPROVER)
    out = {}
    if legal and ticket.status in sources_for(TicketStatus.ON_HOLD):
        out["hold"] = staff_forms.ReasonForm(prefix="hold")
    if legal and ticket.status == TicketStatus.ON_HOLD:
        out["release"] = True
    if legal and ticket.status not in CLOSED and ticket.original_due_at is None and ticket.due_at > timezone.now():
        out["extend"] = staff_forms.ExtendForm(prefix="extend")
    if _has(user, REVIEWER, APPROVER, OPERATOR) and ticket.status == TicketStatus.FAILED:
        out["retry"] = True
    return out


@staff_required
def request_detail(request, public_id):
    ticket = _ticket(request, public_id)
    return page(request, "dashboard/request_detail.html", _detail_context(request, ticket))


@staff_required
@require_POST
def request_review(request, public_id):
    ticket = _ticket(request, public_id)
    if not _has(request.user, REVIEWER, APPROVER):
        raise PermissionDenied(_("Only the legal team can start a review."))
    try:
        services.ticket_start_review(ticket=ticket, reviewer=request.user)
    except TransitionError as exc:
        messages.error(request, _("The review could not start: the request is now '%(status)s'.")
                       % {"status": status_label(exc.current_status or "")})
    else:
        messages.success(request, _("Review started. Confirm the records below."))
    return redirect("portal:dashboard_request", public_id=ticket.public_id)


@staff_required
@require_POST
def request_approve(request, public_id):
    ticket = _ticket(request, public_id)
    if not _has(request.user, APPROVER):
        raise PermissionDenied(_("Only a legal approver can approve."))
    if ticket.status != TicketStatus.IN_REVIEW:
        messages.error(request, _("The request is '%(status)s', not in review; nothing was approved.")
                       % {"status": status_label(ticket.status)})
        return redirect("portal:dashboard_request", public_id=ticket.public_id)
    records = selectors.ticket_resolution(ticket=ticket)
    form = forms.ApproveForm(request.POST, methods=_erasing_methods(ticket), records=records)
    if form.is_valid():
        try:
            with jobs_off_request():  # embedded mode: the job runs on the embedded worker (issue 21 item 7)
                job = services.ticket_approve(
                    ticket=ticket, approver=request.user, method=form.cleaned_data["method"],
                    hyperparameters=form.cleaned_data["hyperparameters"], record_ids=form.cleaned_data["records"],
                )
        except TransitionError as exc:
            messages.error(request, _("Not approved: the request is now '%(status)s'.")
                           % {"status": status_label(exc.current_status or "")})
            return redirect("portal:dashboard_request", public_id=ticket.public_id)
        except services.ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Approved. The unlearning job was created."))
            return redirect("portal:dashboard_job", public_id=job.public_id)
    return page(request, "dashboard/request_detail.html",
                  _detail_context(request, ticket, approve_form=form), status=400)


@staff_required
@require_POST
def request_deny(request, public_id):
    ticket = _ticket(request, public_id)
    if not _has(request.user, APPROVER):
        raise PermissionDenied(_("Only a legal approver can deny."))
    form = forms.DenyForm(request.POST, jurisdiction=ticket.jurisdiction)
    if form.is_valid():
        try:
            services.ticket_deny(ticket=ticket, actor=request.user, **form.cleaned_data)
        except TransitionError as exc:
            messages.error(request, _("Not denied: the request is now '%(status)s'.")
                           % {"status": status_label(exc.current_status or "")})
        except services.ServiceError as exc:
            form.add_error(None, str(exc))
            return page(request, "dashboard/request_detail.html",
                          _detail_context(request, ticket, deny_form=form), status=400)
        else:
            messages.success(request, _("The request was denied."))
        return redirect("portal:dashboard_request", public_id=ticket.public_id)
    return page(request, "dashboard/request_detail.html", _detail_context(request, ticket, deny_form=form),
                  status=400)


def _job(request, public_id):
    return get_object_or_404(UnlearningJob.objects.select_related("model", "source_version"), public_id=public_id)


@staff_required
def job_detail(request, public_id):
    job = _job(request, public_id)
    reports = list(EvaluationReport.objects.filter(job=job).order_by("id"))
    unlearned = next((r for r in reports if r.role == "unlearned"), None)
    metric_names = ["verbmem_forget", "knowmem_forget", "knowmem_retain", "mink_auc"]
    table = [
        {"role": r.role, "values": [labels.metric_value(m, (r.metrics.get(m) or {}).get("value"), unit=False)
                                    for m in metric_names]} for r in reports
    ]
    return page(request, "dashboard/job_detail.html", {
        "job": job, "status": status_label(job.status), "tickets": job.tickets.all(),
        "metric_heads": [{"label": labels.metric_label(m), "unit": labels.METRICS[m].unit} for m in metric_names],
        "table": table,
        "checks": [labels.check_row(c) for c in (unlearned.verdicts or {}).get("checks", []) if isinstance(c, dict)]
        if unlearned else [],
        "method_description": labels.method_description(job.method),
        "hyperparameters": sorted((job.hyperparameters or {}).items()),
        "phase_label": labels.phase_label((job.progress or {}).get("phase", "")),
        "certificate": Certificate.objects.filter(job=job).first(),
        "final": job.status in ("succeeded", "failed", "cancelled"),
        "can_cancel": _has(request.user, OPERATOR, APPROVER) and job.status in ("queued", "running", "evaluating"),
        "retry_tickets": [t for t in job.tickets.all() if t.status == TicketStatus.FAILED]
        if _has(request.user, REVIEWER, APPROVER, OPERATOR) else [],
    })


@staff_required
def job_progress(request, public_id):
    return job_status_json(_job(request, public_id))


@staff_required
def certificate_json(request, public_id):
    return certificate_json_response(Certificate.objects.filter(public_id=public_id).first())


@staff_required
def certificate_pdf(request, public_id):
    from .certificate_pdf import certificate_pdf_response

    return certificate_pdf_response(Certificate.objects.filter(public_id=public_id).first())


@staff_required
def certificate_html(request, public_id):
    return certificate_html_response(request, Certificate.objects.filter(public_id=public_id).first())


@staff_required
def models_list(request):
    models = TargetModel.objects.order_by("name")
    rows = [{"model": m, "serving": selectors.model_serving_version(m)} for m in models]
    return page(request, "dashboard/models.html", {"rows": rows})


@staff_required
def model_lineage(request, pk):
    model = get_object_or_404(TargetModel, pk=pk)
    published = ModelVersion.objects.filter(model=model, role=ModelVersion.ROLE_PUBLISHED).select_related(
        "produced_by").order_by("sequence")
    others = ModelVersion.objects.filter(model=model).exclude(role=ModelVersion.ROLE_PUBLISHED).select_related(
        "produced_by").order_by("id")
    dp_jobs = []
    for cert in Certificate.objects.filter(job__model=model).select_related("job").order_by("issued_at"):
        dp = cert.payload.get("dp_guarantee")
        if isinstance(dp, dict):
            eps, delta = dp.get("per_subject_epsilon"), dp.get("per_subject_delta")
            group = dp.get("group_bound_not_a_guarantee") or {}
            dp_jobs.append({"certificate": cert, "job": cert.job, "dp": dp,
                            "epsilon": labels.format_number(eps, 2) if eps is not None else
                            _("none claimed (bound %(eps)s)") % {"eps": labels.format_number(group.get("epsilon"), 1)},
                            "delta": labels.scientific(delta) if delta is not None else "—"})
    ledger = model.privacy_ledger or {}
    return page(request, "dashboard/model_lineage.html", {
        "model": model, "published": published, "others": others,
        "points": lineage_points(model), "ledger": labels.ledger_rows(ledger), "dp_jobs": dp_jobs,
    })


@staff_required
def model_sustainability_png(request, pk):
    model = get_object_or_404(TargetModel, pk=pk)
    response = HttpResponse(sustainability_png(lineage_points(model), title=model.name), content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response
