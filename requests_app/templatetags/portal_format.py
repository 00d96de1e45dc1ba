"""Template filters for people-facing values: ``{% load portal_format %}`` (issue 21 item 4).

Dates: ``{{ dt|when }}`` renders ``<time datetime="…">5 Jan 2026, 10:00 UTC</time>``; portal.js
rewrites it in the reader's locale and time zone (the zone is always printed). ISO strings from
signed documents are accepted too. Labels and figures come from :mod:`requests_app.portal.labels`.
"""
from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from ..portal import labels

register = template.Library()


def _as_datetime(value):
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value.astimezone(UTC)


def _time(value, fmt: str, kind: str):
    dt = _as_datetime(value)
    if dt is None:
        return value if value not in (None, "") else "—"
    return format_html('<time datetime="{}" data-local="{}">{}</time>',
                       dt.isoformat(timespec="seconds"), kind, dt.strftime(fmt).lstrip("0"))


@register.filter
def when(value):
    """Date and time with the time zone: ``5 Jan 2026, 10:00 UTC``."""
    return _time(value, "%d %b %Y, %H:%M UTC", "datetime")


@register.filter
def day(value):
    """The date alone: ``5 Jan 2026`` (full timestamp in ``datetime``)."""
    return _time(value, "%d %b %Y", "date")


@register.filter
def label(value, kind: str):
    """``{{ ticket.status|label:"ticket_status" }}``: the Django choices label."""
    return labels.choice_label(kind, value)


@register.filter
def method(value):
    return labels.method_label(value)


@register.filter
def metric(value, name: str):
    """``{{ value|metric:"verbmem_forget" }}`` → ``12.3 ROUGE-L ×100``."""
    return labels.metric_value(name, value)


@register.filter
def metric_plain(value, name: str):
    """The value with the metric's precision, without its unit (table cells under a unit header)."""
    return labels.metric_value(name, value, unit=False)


@register.filter
def ci(value, name: str):
    """``{{ check.ci95|ci:check.name }}`` → ``[0.412, 0.588]``."""
    return labels.metric_ci(name, value)


@register.filter
def metric_name(value):
    return labels.metric_label(value)


@register.filter
def comparison(value):
    return labels.comparison_label(value)


@register.filter
def role(value):
    return labels.role_label(value)


@register.filter
def seconds(value):
    """A duration in seconds as ``42 s``, ``3 min 5 s`` or ``1 h 2 min``."""
    try:
        s = int(round(float(value)))
    except (TypeError, ValueError):
        return "—"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
