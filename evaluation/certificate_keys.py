"""Published certificate keys: the key set an auditor needs to verify any certificate (DESIGN §8).

The key-set document (schema ``erasure-certificate-keys/1``) is what
``GET /api/v1/certificates/keys/``, ``/.well-known/erasure-certificate-keys.json`` and
``manage.py certificate_keys_export FILE`` publish::

    {"schema": "erasure-certificate-keys/1", "issuer": "...",
     "key_id_rule": "first 16 hex characters of sha256(raw 32-byte Ed25519 public key)",
     "keys": [{"key_id": "0a1b...", "algorithm": "Ed25519", "status": "current" | "retired",
               "valid_from": "2026-01-01T00:00:00+00:00" | null,
               "valid_until": "2026-06-01T00:00:00+00:00" | null,
               "public_key_pem": "-----BEGIN PUBLIC KEY-----...",
               "public_key_raw_base64": "<base64 of the 32 raw bytes>"}, ...]}

Validity: a certificate verifies with a key only if its ``issued_at`` lies in
``[valid_from, valid_until]`` (a ``null`` bound is open: the installation's first key is valid
from the start, and keys created before validity was recorded have no bounds). A retired key stays published so that the certificates it signed keep verifying;
it signs nothing after ``valid_until``. Limitation: ``issued_at`` is stated by the signer, so the
window protects against certificates dated after a rotation, not against a stolen retired key
used to back-date one (that needs a trusted timestamp, RFC 3161, which is not implemented).

No Django: importable by the standalone verifier (``python -m evaluation.certificate``).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .strict_json import StrictJSONError, strict_loads

__all__ = [
    "KEYS_SCHEMA",
    "KEY_STATUSES",
    "KeySetError",
    "PublishedKey",
    "keyset_document",
    "keyset_parse",
    "keyset_load_file",
    "parse_timestamp",
]

KEYS_SCHEMA = "erasure-certificate-keys/1"
KEY_STATUSES = ("current", "retired")
KEY_ID_RULE = "first 16 hex characters of sha256(raw 32-byte Ed25519 public key)"


class KeySetError(ValueError):
    """A published key set that cannot be trusted or read (the reason is the message)."""


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """First 16 hex characters of sha256(raw 32-byte Ed25519 public key, RFC 8032 §5.1.5)."""
    if isinstance(public_key, Ed25519PrivateKey):
        public_key = public_key.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError("key_id needs an Ed25519 key")
    return hashlib.sha256(_raw(public_key)).hexdigest()[:16]


def parse_timestamp(value, what: str) -> dt.datetime | None:
    """ISO 8601 with a UTC offset → aware datetime; ``None`` stays ``None``.
    Raises ``ValueError`` naming ``what`` for a naive, unparseable or non-string value."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be an ISO 8601 string")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} {value[:40]!r} is not ISO 8601") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} {value[:40]!r} has no UTC offset")
    return when


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.astimezone(dt.UTC).isoformat()


@dataclass(frozen=True)
class PublishedKey:
    """One published Ed25519 public key with its validity window and status."""

    key_id: str
    public_key: Ed25519PublicKey
    status: str = "current"
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    algorithm: str = "Ed25519"

    @classmethod
    def of(cls, key, *, status="current", valid_from=None, valid_until=None) -> PublishedKey:
        """A PublishedKey for an Ed25519 public (or private: its public part) key."""
        public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
        return cls(raw_key_id(public), public, status, valid_from, valid_until)

    def validity_problem(self, issued_at: dt.datetime | None) -> str | None:
        """``None`` when a certificate issued at ``issued_at`` may carry this key's signature,
        otherwise the reason (unknown status; outside ``[valid_from, valid_until]``)."""
        if self.status not in KEY_STATUSES:
            return f"key {self.key_id} has status {self.status!r}, not one of {', '.join(KEY_STATUSES)}"
        if self.valid_from is None and self.valid_until is None:
            return None
        window = f"valid from {_iso(self.valid_from) or 'the start'} until {_iso(self.valid_until) or 'now'}"
        if issued_at is None:
            return f"key {self.key_id} is {window}, and the certificate states no issued_at"
        if (self.valid_from is not None and issued_at < self.valid_from) or (
            self.valid_until is not None and issued_at > self.valid_until
        ):
            return f"key {self.key_id} is {window}; the certificate was issued at {_iso(issued_at)}"
        return None

    def to_json(self) -> dict:
        """The published entry (see the module docstring)."""
        return {
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "status": self.status,
            "valid_from": _iso(self.valid_from),
            "valid_until": _iso(self.valid_until),
            "public_key_pem": self.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode("ascii"),
            "public_key_raw_base64": base64.b64encode(_raw(self.public_key)).decode("ascii"),
        }


def keyset_document(keys, *, issuer: str) -> dict:
    """The key-set document for ``keys`` (iterable of :class:`PublishedKey`), current key first."""
    ordered = sorted(keys, key=lambda k: (k.status != "current", -(k.valid_from or _EPOCH).timestamp(), k.key_id))
    return {"schema": KEYS_SCHEMA, "issuer": issuer, "key_id_rule": KEY_ID_RULE,
            "keys": [k.to_json() for k in ordered]}


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _entry(i: int, e) -> PublishedKey:
    where = f"keys[{i}]"
    if not isinstance(e, dict):
        raise KeySetError(f"{where} is not an object")
    kid, alg, status = e.get("key_id"), e.get("algorithm"), e.get("status")
    if not isinstance(kid, str) or not kid:
        raise KeySetError(f"{where} has no key_id")
    if alg != "Ed25519":
        raise KeySetError(f"{where} ({kid}): unsupported algorithm {alg!r}")
    if status not in KEY_STATUSES:
        raise KeySetError(f"{where} ({kid}): status must be one of {', '.join(KEY_STATUSES)}, got {status!r}")
    pem, raw = e.get("public_key_pem"), e.get("public_key_raw_base64")
    if pem is None and raw is None:
        raise KeySetError(f"{where} ({kid}): no public_key_pem or public_key_raw_base64")
    try:
        pub_pem = serialization.load_pem_public_key(pem.encode("ascii")) if pem is not None else None
        pub_raw = (Ed25519PublicKey.from_public_bytes(base64.b64decode(raw, validate=True))
                   if raw is not None else None)
    except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeEncodeError) as exc:
        raise KeySetError(f"{where} ({kid}): unreadable public key ({exc})") from None
    if pub_pem is not None and not isinstance(pub_pem, Ed25519PublicKey):
        raise KeySetError(f"{where} ({kid}): the PEM key is not Ed25519")
    public = pub_pem or pub_raw
    if pub_pem is not None and pub_raw is not None and _raw(pub_pem) != _raw(pub_raw):
        raise KeySetError(f"{where} ({kid}): PEM and raw public key differ")
    if raw_key_id(public) != kid:
        raise KeySetError(f"{where}: key_id {kid} does not match its public key ({raw_key_id(public)})")
    try:
        valid_from = parse_timestamp(e.get("valid_from"), f"{where} valid_from")
        valid_until = parse_timestamp(e.get("valid_until"), f"{where} valid_until")
    except ValueError as exc:
        raise KeySetError(str(exc)) from None
    if valid_from and valid_until and valid_until < valid_from:
        raise KeySetError(f"{where} ({kid}): valid_until is before valid_from")
    return PublishedKey(kid, public, status, valid_from, valid_until)


def keyset_parse(document) -> dict[str, PublishedKey]:
    """``{key_id: PublishedKey}`` from a key-set document (dict, or JSON text/bytes parsed with
    :func:`evaluation.strict_json.strict_loads`). Raises :class:`KeySetError` for a wrong schema,
    a malformed entry, a key id that does not hash from its key, a duplicated key id, or more
    than one ``current`` key."""
    if isinstance(document, (bytes, bytearray, str)):
        try:
            document = strict_loads(document)
        except StrictJSONError as exc:
            raise KeySetError(f"key set is not strict JSON: {exc.reason}") from None
    if not isinstance(document, dict) or document.get("schema") != KEYS_SCHEMA:
        raise KeySetError(f"not a key set (expected schema {KEYS_SCHEMA!r})")
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise KeySetError("key set has no 'keys' list")
    out: dict[str, PublishedKey] = {}
    for i, e in enumerate(entries):
        key = _entry(i, e)
        if key.key_id in out:
            raise KeySetError(f"key id {key.key_id} is listed twice")
        out[key.key_id] = key
    if sum(k.status == "current" for k in out.values()) > 1:
        raise KeySetError("more than one key has status 'current'")
    return out


def keyset_load_file(path: str | Path) -> dict[str, PublishedKey]:
    """:func:`keyset_parse` of a file; ``OSError`` reading it becomes :class:`KeySetError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeySetError(f"cannot read the key set {path}: {exc.strerror or exc}") from None
    return keyset_parse(data)
