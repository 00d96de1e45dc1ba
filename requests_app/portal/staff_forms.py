"""Dashboard forms of issue 21 items 3, 7, 10 and 16: validation and messages only (mutations live
in services, reads in selectors)."""
from __future__ import annotations

import datetime as dt

from django import forms
from django.utils.translation import gettext_lazy as _

from ..models import Jurisdiction, TicketStatus
from .forms import SummaryMixin

# --- item 3: a request naming nobody found --------------------------------------------------------

class NoDataForm(SummaryMixin, forms.Form):
    note = forms.CharField(
        label=_("Note to the requester (optional)"), required=False, max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Sent with the answer, e.g. which spellings and aliases you searched for."))


class SubjectLinkForm(SummaryMixin, forms.Form):
    subject = forms.CharField(
        label=_("The person in our data (name, alias or subject id)"), max_length=300,
        help_text=_("Use this when you found the person by hand, e.g. under another spelling."))


# --- item 7: staff actions on a request and its job -------------------------------------------------

class ReasonForm(SummaryMixin, forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class ExtendForm(SummaryMixin, forms.Form):
    reason = forms.CharField(label=_("Reason (sent to the requester)"), max_length=5000,
                             widget=forms.Textarea(attrs={"rows": 2}))
    days = forms.IntegerField(label=_("Days (empty: the law's maximum)"), required=False, min_value=1, max_value=62)


class CancelForm(SummaryMixin, forms.Form):
    reason = forms.CharField(label=_("Reason for cancelling"), max_length=5000, required=False)


# --- item 16: the reviewer queue --------------------------------------------------------------------

DUE_CHOICES = [("", _("Any deadline")), ("overdue", _("Overdue")), ("soon", _("Due within 7 days")),
               ("later", _("Due later"))]


class QueueFilterForm(forms.Form):
    """GET filters of the queue; every field optional, invalid values are ignored (a bookmark
    with an old status name still shows the queue)."""

    q = forms.CharField(label=_("Search requester or subject"), required=False, max_length=200)
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("Any open status"))] + list(TicketStatus.choices))
    jurisdiction = forms.ChoiceField(label=_("Law"), required=False,
                                     choices=[("", _("Any law"))] + list(Jurisdiction.choices))
    due = forms.ChoiceField(label=_("Deadline"), required=False, choices=DUE_CHOICES)
    assignee = forms.ChoiceField(label=_("Assignee"), required=False)
    closed = forms.BooleanField(label=_("Include closed requests"), required=False)

    def __init__(self, *args, assignees=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = ([("", _("Anyone")), ("me", _("Me")), ("none", _("Nobody"))]
                                           + [(str(u.pk), u.email or u.get_username()) for u in assignees])


class BulkForm(SummaryMixin, forms.Form):
    ACTIONS = [("assign", _("Assign to")), ("hold", _("Put on legal hold"))]
    action = forms.ChoiceField(label=_("Action"), choices=ACTIONS)
    tickets = forms.MultipleChoiceField(label=_("Requests"), widget=forms.CheckboxSelectMultiple,
                                        error_messages={"required": _("Tick at least one request.")})
    assignee = forms.ChoiceField(label=_("Assignee"), required=False)
    reason = forms.CharField(label=_("Reason for the hold"), required=False, max_length=5000)

    def __init__(self, *args, ticket_choices=(), assignees=(), **kwargs):
        kwargs.setdefault("auto_id", "bulk_%s")  # the queue's filter form above has an assignee field too
        super().__init__(*args, **kwargs)
        self.fields["tickets"].choices = list(ticket_choices)
        self.fields["assignee"].choices = [("", _("Nobody (unassign)"))] + [
            (str(u.pk), u.email or u.get_username()) for u in assignees]

    def clean(self):
        data = super().clean()
        if data.get("action") == "hold" and not (data.get("reason") or "").strip():
            self.add_error("reason", _("A legal hold needs a reason."))
        return data


# --- item 10: the auditor pages ---------------------------------------------------------------------

def _year_in_range(form: forms.Form, data: dict) -> None:
    """Dates outside the API's years (1900–9000) are a form error, never an overflow (fresh-user trial:
    9999-12-31 + one day raised OverflowError, a 500)."""
    from ..api.validation import MAX_YEAR, MIN_YEAR

    for name in ("start", "end"):
        day = data.get(name)
        if day and not MIN_YEAR <= day.year <= MAX_YEAR:
            form.add_error(name, _("Give a date between the years %(lo)s and %(hi)s.") % {"lo": MIN_YEAR, "hi": MAX_YEAR})
            data.pop(name, None)


class AuditFilterForm(forms.Form):
    object_id = forms.CharField(label=_("Object (request, job or certificate id)"), required=False, max_length=64)
    object_type = forms.ChoiceField(label=_("Object type"), required=False)
    actor = forms.CharField(label=_("Actor (e-mail, user name or “system”)"), required=False, max_length=200)
    verb = forms.ChoiceField(label=_("Event"), required=False)
    start = forms.DateField(label=_("From (UTC date)"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To (UTC date, inclusive)"), required=False,
                          widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, verbs=(), object_types=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["verb"].choices = [("", _("Any event"))] + list(verbs)
        self.fields["object_type"].choices = [("", _("Any"))] + [(t, t) for t in object_types]

    def clean(self):
        data = super().clean()
        _year_in_range(self, data)
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", _("The end date is before the start date."))
        return data


class PeriodForm(SummaryMixin, forms.Form):
    """The CCPA §7102 report's period: plain dates (UTC days), the end inclusive."""

    start = forms.DateField(label=_("From (UTC date)"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To (UTC date, inclusive)"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        _year_in_range(self, data)
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", _("The end date is before the start date."))
        return data


def day_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[start 00:00 UTC, end + 1 day 00:00 UTC)``: the half-open range of whole UTC days."""
    return (dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC),
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC))
