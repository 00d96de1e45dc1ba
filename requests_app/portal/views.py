"""Data-owner pages and the public certificate check. Thin: a form, one service call, a template.

Owners only ever reach their own tickets: every lookup goes through
``selectors.tickets_visible_to(user).filter(requester=user)`` and answers 404 otherwise.
"""
from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from .. import selectors, services
from ..certificates import certificate_verify_document
from ..legal import complaint_options
from ..models import Certificate, TicketStatus
from ..ratelimit import client_ip, rate_limits_hit
from ..workflow import TransitionError, sources_for
from . import forms, labels
from . import services as portal_services
from .presentation import (
    certificate_summary,
    page,
    status_label,
    ticket_timeline,
    verification_reason_text,
)
from .stepper import ticket_steps

#: no "We answer by" on a request that was declined or withdrawn (issue 21 item 15)
NO_DEADLINE = (TicketStatus.DENIED, TicketStatus.WITHDRAWN, TicketStatus.NO_DATA)


def _safe_next(request, url: str) -> str:
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return url
    return ""


def _own_ticket(request, public_id):
    ticket = (
        selectors.tickets_visible_to(request.user).filter(requester=request.user, public_id=public_id).first()
    )
    if ticket is None:
        raise Http404(_("No such request."))
    return ticket


def _certificate_for(ticket):
    """The ticket's erasure certificate (a suppression notice is never shown to the owner as one)."""
    return Certificate.objects.filter(job__tickets=ticket, document_type=Certificate.ERASURE).order_by("-id").first()


def _too_many(response, wait: int):
    response["Retry-After"] = str(wait)
    return response


def _too_many_message(wait: int) -> str:
    return _("Too many attempts. Try again in %(minutes)s minutes.") % {"minutes": max(1, (wait + 59) // 60)}


def _code_rate_limited(request, ticket) -> int | None:
    """Resend and verify share the per-ticket and per-IP limits (``RATE_LIMITS`` code_ticket, code_ip)."""
    return rate_limits_hit([("code_ticket", str(ticket.public_id)), ("code_ip", client_ip(request))])


def home(request):
    return page(request, "portal/home.html")


# --- sign-in ------------------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
def signin(request):
    if request.method == "POST":
        form = forms.SignInForm(request.POST)
        wait = None
        if form.is_valid():
            email = form.cleaned_data["email"].strip().lower()
            wait = rate_limits_hit([("signin_email", email), ("signin_ip", client_ip(request))])
        if wait:
            form.add_error(None, _too_many_message(wait))
            return _too_many(page(request, "portal/signin.html", {"form": form}, status=429), wait)
        if form.is_valid():
            next_url = _safe_next(request, form.cleaned_data.get("next", ""))
            portal_services.signin_link_send(
                email=form.cleaned_data["email"], next_url=next_url,
                link_for=lambda token: request.build_absolute_uri(reverse("portal:signin_confirm", args=[token])),
            )
            request.session["portal_signin_email"] = form.cleaned_data["email"]
            return redirect("portal:signin_sent")
    else:
        form = forms.SignInForm(initial={"next": _safe_next(request, request.GET.get("next", ""))})
    return page(request, "portal/signin.html", {"form": form})


def signin_sent(request):
    return page(request, "portal/signin_sent.html", {"email": request.session.get("portal_signin_email", "")})


@require_http_methods(["GET", "POST"])
def signin_confirm(request, token: str):
    """GET shows a button (so that mail scanners following links do not use the one-time link up);
    POST signs in."""
    try:
        data = portal_services.signin_token_peek(token)
    except portal_services.SignInError as exc:
        return page(request, "portal/signin_invalid.html", {"reason": str(exc)}, status=400)
    if request.method == "POST":
        try:
            user = portal_services.signin_token_consume(token)
        except portal_services.SignInError as exc:
            return page(request, "portal/signin_invalid.html", {"reason": str(exc)}, status=400)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("You are signed in as %(email)s.") % {"email": user.email})
        next_url = _safe_next(request, portal_services.signin_next_url(data))
        if next_url:
            return redirect(next_url)
        return redirect("portal:dashboard" if selectors.user_is_staff_role(user) else "portal:my_requests")
    return page(request, "portal/signin_confirm.html", {"email": data.get("e", "")})


@require_POST
def signout(request):
    logout(request)
    messages.info(request, _("You are signed out."))
    return redirect("portal:home")


# --- the data owner's requests --------------------------------------------------------------------

@login_required
def my_requests(request):
    tickets = selectors.tickets_visible_to(request.user).filter(requester=request.user).order_by("-received_at")
    rows = [{"ticket": t, "status": status_label(t.status), "closed": t.status in NO_DEADLINE} for t in tickets]
    return page(request, "portal/my_requests.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def request_new(request):
    if selectors.user_roles(request.user) & {"auditor"} and not request.user.is_superuser:
        # auditors read everything and change nothing, also through the portal (issue 13 item 9)
        raise PermissionDenied(_("Auditors have read-only access and cannot file requests."))
    if request.method == "POST":
        form = forms.RemovalRequestForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:  # nobody of that name: filed anyway, our team searches by hand (issue 21 item 3)
                subject = services.subject_find_by_name(data["subject_name"])
            except services.ServiceError:
                form.add_error("subject_name", _("Several people in our data have this name. Add more detail, "
                                                 "e.g. your full name as it appears in public texts."))
            else:
                try:
                    ticket, _created = services.ticket_create(
                        requester=request.user, subject=subject, subject_name_given=data["subject_name"],
                        jurisdiction=data["jurisdiction"],
                        legal_ground=data.get("legal_ground") or "", description=form.description_text(),
                        evidence_text=form.evidence_text(), target_model=data.get("target_model"),
                        idempotency_key=(data.get("idempotency_key") or None),
                    )
                except services.PayloadTooLarge:
                    form.add_error("upload", forms.upload_too_large_message(len(form.evidence_text().encode())))
                else:
                    messages.success(request, _("Your request was received. We sent a confirmation code to %(email)s.")
                                     % {"email": request.user.email})
                    if subject is None:
                        messages.info(request, _("We did not find this name in our data right away. Our team will "
                                                 "search by hand and answer you by the deadline either way."))
                    return redirect("portal:request_verify", public_id=ticket.public_id)
    else:
        form = forms.RemovalRequestForm()
    return page(request, "portal/request_new.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def request_verify(request, public_id):
    ticket = _own_ticket(request, public_id)
    if ticket.status != TicketStatus.SUBMITTED:
        return redirect("portal:request_detail", public_id=ticket.public_id)
    form = forms.IdentityCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and (wait := _code_rate_limited(request, ticket)):
        form.add_error("code", _too_many_message(wait))
        return _too_many(page(request, "portal/request_verify.html", {"ticket": ticket, "form": form}, status=429),
                         wait)
    if request.method == "POST" and form.is_valid():
        try:
            services.ticket_verify_identity(ticket=ticket, code=form.cleaned_data["code"], actor=request.user)
        except TransitionError:
            return redirect("portal:request_detail", public_id=ticket.public_id)
        except services.ServiceError as exc:
            text = str(exc)
            if "expired" in text:
                msg = _("The code has expired.")
            elif "too many" in text:
                msg = _("Too many wrong codes were entered. This request can no longer be confirmed by code; "
                        "our legal team will contact you.")
            else:
                msg = _("This code is not right. Check the e-mail and try again.")
            form.add_error("code", msg)
        else:
            messages.success(request, _("Thank you, your identity is confirmed. Our legal team will now review your request."))
            return redirect("portal:request_detail", public_id=ticket.public_id)
    return page(request, "portal/request_verify.html", {"ticket": ticket, "form": form})


@login_required
@require_POST
def request_resend_code(request, public_id):
    ticket = _own_ticket(request, public_id)
    wait = _code_rate_limited(request, ticket)
    if wait:
        messages.error(request, _too_many_message(wait))
        return _too_many(page(request, "portal/request_verify.html",
                              {"ticket": ticket, "form": forms.IdentityCodeForm()}, status=429), wait)
    try:
        services.ticket_resend_code(ticket=ticket, actor=request.user)
    except TransitionError:
        return redirect("portal:request_detail", public_id=ticket.public_id)
    except services.ServiceError:
        messages.error(request, _("Too many wrong codes were entered. This request can no longer be confirmed by "
                                  "code; our legal team will contact you."))
        return page(request, "portal/request_verify.html", {"ticket": ticket, "form": forms.IdentityCodeForm()},
                    status=400)
    messages.success(request, _("We sent a new code to %(email)s. Earlier codes no longer work.")
                     % {"email": request.user.email})
    return redirect("portal:request_verify", public_id=ticket.public_id)


@login_required
def request_detail(request, public_id):
    ticket = _own_ticket(request, public_id)
    job = ticket.jobs.filter(publish=True).order_by("-id").first()
    timeline = ticket_timeline(ticket, viewer=request.user, staff=False)
    return page(request, "portal/request_detail.html", {
        "ticket": ticket,
        "status": status_label(ticket.status),
        "timeline": timeline,
        "stepper": ticket_steps(ticket, timeline),
        "can_withdraw": ticket.status in sources_for(TicketStatus.WITHDRAWN),
        "closed": ticket.status in NO_DEADLINE,
        "notices": ticket.notices.order_by("created_at", "id"),
        "complaint_options": complaint_options(ticket.jurisdiction) if ticket.status == TicketStatus.DENIED else [],
        "job": job,
        "certificate": _certificate_for(ticket),
    })


@login_required
@require_http_methods(["GET", "POST"])
def request_withdraw(request, public_id):
    ticket = _own_ticket(request, public_id)
    if ticket.status not in sources_for(TicketStatus.WITHDRAWN):
        messages.error(request, _("This request can no longer be withdrawn (its status is: %(status)s).")
                       % {"status": status_label(ticket.status)})
        return redirect("portal:request_detail", public_id=ticket.public_id)
    if request.method == "POST":
        try:
            services.ticket_withdraw(ticket=ticket, actor=request.user)
        except TransitionError as exc:
            messages.error(request, _("This request can no longer be withdrawn (its status is: %(status)s).")
                           % {"status": status_label(exc.current_status or "")})
        else:
            messages.success(request, _("Your request was withdrawn."))
        return redirect("portal:request_detail", public_id=ticket.public_id)
    return page(request, "portal/request_withdraw.html", {"ticket": ticket})


@login_required
def request_certificate_json(request, public_id):
    ticket = _own_ticket(request, public_id)
    return certificate_json_response(_certificate_for(ticket))


@login_required
def request_certificate_pdf(request, public_id):
    from .certificate_pdf import certificate_pdf_response

    ticket = _own_ticket(request, public_id)
    return certificate_pdf_response(_certificate_for(ticket))


@login_required
def request_certificate_html(request, public_id):
    ticket = _own_ticket(request, public_id)
    return certificate_html_response(request, _certificate_for(ticket), ticket=ticket)


def certificate_json_response(cert):
    if cert is None:
        raise Http404(_("No certificate has been issued for this request yet."))
    body = json.dumps(cert.as_document(), indent=2, sort_keys=True, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="certificate-{cert.public_id}.json"'
    return response


def certificate_html_response(request, cert, *, ticket=None, back_url=""):
    if cert is None:
        raise Http404(_("No certificate has been issued for this request yet."))
    document = cert.as_document()
    result = certificate_verify_document(document)
    return page(request, "portal/certificate.html", {
        "certificate": cert,
        "ticket": ticket,
        "result": result,
        "reason": verification_reason_text(result.reason),
        "summary": certificate_summary(document["payload"]),
        "document": document,
        "payload_json": json.dumps(document["payload"], indent=2, sort_keys=True, ensure_ascii=False),
        "back_url": back_url,
    })


# --- public certificate check ---------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
def certificate_check(request):
    result = summary = reason = None
    if request.method == "POST":
        form = forms.CertificateCheckForm(request.POST, request.FILES)
        if form.is_valid():
            parsed = form.cleaned_data["parsed"]
            if parsed is None:
                result = {"valid": False}
                reason = form.cleaned_data.get("parse_error") or _(
                    "The text is not valid JSON, so it cannot be a certificate.")
            else:
                checked = certificate_verify_document(form.cleaned_data["text"])  # strict parse of the text
                result = {"valid": checked.valid, "key_id": checked.key_id}
                reason = verification_reason_text(checked.reason)
                payload = parsed.get("payload") if isinstance(parsed, dict) else None
                summary = certificate_summary(payload) if isinstance(payload, dict) else None
    else:
        form = forms.CertificateCheckForm()
    # malformed input (not JSON, wrong field types, empty) is 400; a well-formed certificate is 200 either way
    malformed = request.method == "POST" and (not form.is_valid() or form.cleaned_data.get("parsed") is None)
    return page(request, "portal/certificate_check.html",
                {"form": form, "result": result, "reason": reason, "summary": summary},
                status=400 if malformed else 200)


def job_status_json(job) -> JsonResponse:
    progress = job.progress or {}
    return JsonResponse({
        "id": str(job.public_id),
        "status": job.status,
        "status_label": job.get_status_display(),
        "final": job.status in ("succeeded", "failed", "cancelled"),
        "progress": {**{k: progress.get(k) for k in ("phase", "step", "total", "eta_seconds", "loss")},
                     "phase_label": labels.phase_label(progress.get("phase") or "")},
        "error": job.error,
        "tickets": [{"id": str(t.public_id), "status": t.status, "status_label": status_label(t.status)}
                    for t in job.tickets.all()],
    })
