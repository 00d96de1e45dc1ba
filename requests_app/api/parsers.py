"""DRF parser for request JSON that answers 400 (``ParseError``) for every malformed class of
:mod:`requests_app.api.validation` instead of letting it reach a view (or a 500)."""
from __future__ import annotations

import codecs

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .validation import json_loads_strict


class StrictJSONParser(JSONParser):
    """``application/json`` without NaN/Infinity, NUL, out-of-range numbers or deep nesting."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error - body is not {encoding} text") from exc
        try:
            return json_loads_strict(text)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
