"""Strict JSON and field checks shared by the API parser, serializers and portal forms (issue 13 item 5).

Every malformed value is a ``ValueError`` with a message for the client (the callers turn it into
400); nothing here lets an input reach the database or the arithmetic that would answer 500:

- non-finite numbers (``NaN``, ``Infinity``, and ``1e400`` which Python parses to ``inf``);
- integers outside the signed 64-bit range (SQLite and PostgreSQL ``bigint``);
- NUL characters and unpaired surrogates in strings and keys (PostgreSQL rejects both);
- nesting deeper than ``JSON_MAX_DEPTH`` (``json`` would otherwise hit ``RecursionError``);
- datetimes whose year leaves 1900–9000 (deadline arithmetic near year 9999 overflows), impossible
  calendar dates (``2026-02-30``) and over-long ``Idempotency-Key`` headers.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re

from django.conf import settings

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MIN_YEAR, MAX_YEAR = 1900, 9000
IDEMPOTENCY_KEY_MAX = 100  # RemovalTicket.idempotency_key max_length
_IDEMPOTENCY_KEY_RE = re.compile(rf"^[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX}}}$")


def max_depth() -> int:
    return int(getattr(settings, "JSON_MAX_DEPTH", 32))


def _constant(name: str):
    raise ValueError(f"non-finite number {name} is not allowed")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _int(text: str) -> int:
    if len(text) > 20:
        raise ValueError("integer out of the 64-bit range")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"integer {text} is out of the 64-bit range")
    return value


def string_check(text: str, where: str = "") -> None:
    """Raise ``ValueError`` for a NUL character or an unpaired surrogate in ``text``."""
    if "\x00" in text:
        raise ValueError(f"NUL character not allowed{where}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"invalid unicode (unpaired surrogate){where}") from exc


def json_value_check(value, *, depth_limit: int | None = None) -> None:
    """Walk a decoded JSON value (iteratively); raise ``ValueError`` for what the module docstring lists."""
    limit = max_depth() if depth_limit is None else depth_limit
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth > limit:
                raise ValueError(f"JSON nested deeper than {limit} levels")
            if isinstance(item, dict):
                for k, v in item.items():
                    if isinstance(k, str):
                        string_check(k, " in a key")
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            string_check(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise ValueError("integer out of the 64-bit range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("non-finite number is not allowed")


def json_loads_strict(text: str | bytes):
    """``json.loads`` that raises ``ValueError`` (message for the client) instead of accepting NaN,
    Infinity, out-of-range numbers, NUL, or recursing past ``JSON_MAX_DEPTH``."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError as exc:
        raise ValueError(f"JSON nested deeper than {max_depth()} levels") from exc
    json_value_check(value)
    return value


def datetime_in_range(value: dt.datetime) -> dt.datetime:
    """Check that an aware datetime and its UTC form lie in years 1900–9000.

    Raises:
        ValueError: out of range (the UTC conversion near year 1 or 9999 would overflow).
    """
    try:
        utc = value.astimezone(dt.UTC) if value.tzinfo else value
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"datetime out of range (years {MIN_YEAR}–{MAX_YEAR})") from exc
    if not (MIN_YEAR <= value.year <= MAX_YEAR and MIN_YEAR <= utc.year <= MAX_YEAR):
        raise ValueError(f"datetime out of range (years {MIN_YEAR}–{MAX_YEAR})")
    return value


def parse_aware_datetime(raw: str) -> dt.datetime:
    """An ISO 8601 datetime with a UTC offset, in years 1900–9000.

    Raises:
        ValueError: not ISO 8601, an impossible calendar date or time, naive, or out of range.
    """
    from django.utils.dateparse import parse_datetime

    if not isinstance(raw, str):
        raise ValueError("not an ISO 8601 datetime string")
    string_check(raw)
    try:
        value = parse_datetime(raw.strip())
    except (ValueError, OverflowError) as exc:  # well-formed but impossible: 2026-02-30, 25:00, +99:00
        raise ValueError(f"not a valid date or time ({exc})") from exc
    if value is None:
        raise ValueError("not an ISO 8601 datetime")
    if value.tzinfo is None:
        raise ValueError("naive datetime: give a UTC offset, e.g. 2026-01-31T09:00:00Z")
    return datetime_in_range(value)


def idempotency_key_check(raw: str | None) -> str | None:
    """The ``Idempotency-Key`` header: None when absent; 1–100 printable ASCII characters otherwise.

    Raises:
        ValueError: too long, or with spaces or control characters.
    """
    if raw is None or raw == "":
        return None
    if not _IDEMPOTENCY_KEY_RE.match(raw):
        raise ValueError(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters "
                         "without spaces (a UUID, for example)")
    return raw


def parse_period_bound(raw: str, *, end: bool) -> dt.datetime:
    """A report period's bound: an aware ISO 8601 datetime as :func:`parse_aware_datetime`, or a plain
    date ``YYYY-MM-DD`` read as a whole UTC day (issue 21 item 10): a start date is that day's
    00:00 UTC, an end date is inclusive (the next day's 00:00 UTC, the half-open period's end).

    Raises:
        ValueError: neither an aware datetime nor a valid date.
    """
    import re

    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not a valid date ({exc})") from exc
        if end:
            try:
                day += dt.timedelta(days=1)
            except OverflowError:
                raise ValueError(f"datetime out of range (years {MIN_YEAR}–{MAX_YEAR})") from None
        return datetime_in_range(dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC))
    return parse_aware_datetime(raw)
