"""Strict JSON parsing for signed documents (certificates, published key sets).

A signature covers ``canonical_json(payload)`` (DESIGN §8); a verifier re-serialises the parsed
payload. A lenient parser would let two different texts verify as the same document, or let a
human read a value other than the one that was signed. :func:`strict_loads` therefore rejects,
with a reason naming the first offending token:

- text that is not UTF-8, or not JSON (RFC 8259 §2), including a leading byte-order mark;
- duplicate object keys (RFC 8259 §4 says names SHOULD be unique; parsers disagree on which
  duplicate wins, so a document with both ``"passed": false`` and ``"passed": true`` is refused);
- ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON, although Python's ``json`` accepts them);
- numbers in a form ``canonical_json`` never writes: an integer must be ``str(int(token))``
  (so ``-0`` and ``1e2`` as an integer are refused) and a float must be Python's shortest
  round-trip ``repr`` (so ``1.50``, ``1E5``, ``1e5`` for ``100000.0`` and ``0.10000000000000001``
  are refused, while ``1.0``, ``1e-05`` and ``3e+63`` are the canonical forms of their values);
  numbers that overflow a double are refused too;
- nesting deeper than ``max_depth``.

With ``canonical_numbers=False`` (uploaded data such as corpus lines, where ``1.50`` is an ordinary
number) only the number-form rule is dropped; everything else, including non-finite and over-long
numbers, is still refused.

No Django, no torch: importable on an auditor's machine with only ``cryptography``.
"""
from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["StrictJSONError", "strict_loads"]


class StrictJSONError(ValueError):
    """The text is not strict canonical-number JSON; ``reason`` says why (one line)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise StrictJSONError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _constant(name: str):
    raise StrictJSONError(f"{name} is not a JSON number")


def _float(token: str) -> float:
    value = _finite_float(token)
    if repr(value) != token:
        raise StrictJSONError(
            f"non-canonical number {token[:40]} (the canonical form of this value is {value!r})"
        )
    return value


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise StrictJSONError(f"number {token[:40]} does not fit a double")
    return value


def _any_int(token: str) -> int:
    try:
        return int(token)
    except ValueError as exc:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise StrictJSONError(f"integer with {len(token)} digits is too long") from exc


def _int(token: str) -> int:
    value = _any_int(token)
    if str(value) != token:
        raise StrictJSONError(f"non-canonical number {token[:40]} (canonical form {value})")
    return value


def _depth(obj: Any, limit: int) -> None:
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                raise StrictJSONError(f"nested deeper than {limit} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def strict_loads(data: bytes | bytearray | str, *, max_depth: int = 64, canonical_numbers: bool = True) -> Any:
    """Parse ``data`` (UTF-8 bytes or text) as strict JSON; see the module docstring
    (``canonical_numbers=False``: any finite number form is accepted).

    Returns the parsed value (dict, list, str, int, float, bool or None).
    Raises :class:`StrictJSONError` with a one-line ``reason`` for every refusal.
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError(f"not UTF-8 text (byte {exc.start})") from None
    if not isinstance(data, str):
        raise StrictJSONError(f"expected JSON text, got {type(data).__name__}")
    try:
        value = json.loads(
            data, object_pairs_hook=_pairs, parse_constant=_constant,
            parse_float=_float if canonical_numbers else _finite_float,
            parse_int=_int if canonical_numbers else _any_int,
        )
    except StrictJSONError:
        raise
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise StrictJSONError(f"nested deeper than {max_depth} levels") from None
    _depth(value, max_depth)
    return value
