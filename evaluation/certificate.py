"""Canonical JSON, Ed25519 signing and verification of certificates (DESIGN §8).

- Canonical JSON: ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
  allow_nan=False)`` encoded as UTF-8 (keys sorted by code point, no insignificant
  whitespace, NaN/Infinity rejected). Python's float ``repr`` is the shortest round-trip
  form, so equal values serialise to equal bytes.
- Signature: Ed25519 (RFC 8032 §5.1, pure Ed25519 over the canonical payload bytes) with
  ``cryptography``; signature transported as standard base64.
- Key id: the first 16 hex characters of sha256(raw 32-byte public key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALGORITHM",
    "VerificationResult",
    "canonical_json",
    "load_or_create_signing_key",
    "load_public_key",
    "public_key_pem",
    "key_id",
    "sign_certificate",
    "verify_certificate",
    "render_certificate_html",
]

ALGORITHM = "Ed25519"


def canonical_json(obj: Any) -> bytes:
    """Canonical UTF-8 JSON bytes of ``obj`` (sorted keys, ``(",", ":")`` separators,
    non-ASCII kept as UTF-8, no whitespace). DESIGN §8.

    Raises ``ValueError`` for NaN/±Infinity and ``TypeError`` for values that are not JSON
    types (dict with str keys, list, tuple, str, int, float, bool, None).
    """
    _check_keys(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check_keys(obj: Any) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"canonical JSON needs str keys, got {type(k).__name__}")
            _check_keys(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_keys(v)


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """First 16 hex characters of sha256(raw 32-byte Ed25519 public key, RFC 8032 §5.1.5).
    A private key is accepted and its public key used. Raises ``TypeError`` for other keys."""
    if isinstance(public_key, Ed25519PrivateKey):
        public_key = public_key.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError("key_id needs an Ed25519 key")
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def load_or_create_signing_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Load an unencrypted PKCS#8 PEM Ed25519 private key from ``path``; if the file does
    not exist, generate one (RFC 8032) and write it with mode 0600 (parent directories are
    created). Raises ``ValueError``/``TypeError`` if the file is not an Ed25519 PEM key."""
    p = Path(path)
    if p.exists():
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"{p} does not hold an Ed25519 private key")
        return key
    p.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    os.chmod(p, 0o600)
    return key


def public_key_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """SubjectPublicKeyInfo PEM text of the (public part of the) key, for publication."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """Parse a PEM public key. Raises ``ValueError`` if it is not an Ed25519 public key."""
    key = serialization.load_pem_public_key(pem.encode("ascii") if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def sign_certificate(payload: dict, private_key: Ed25519PrivateKey) -> dict:
    """Sign ``canonical_json(payload)`` with Ed25519 (RFC 8032 §5.1.6).

    Returns ``{"payload": payload, "signature": <base64>, "key_id": key_id(public),
    "algorithm": "Ed25519"}``. Raises ``TypeError``/``ValueError`` if the payload is not
    canonical-JSON serialisable (e.g. contains NaN).
    """
    if not isinstance(payload, dict):
        raise TypeError("payload must be a dict")
    sig = private_key.sign(canonical_json(payload))
    return {
        "payload": payload,
        "signature": base64.b64encode(sig).decode("ascii"),
        "key_id": key_id(private_key.public_key()),
        "algorithm": ALGORITHM,
    }


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of :func:`verify_certificate`. ``reason`` is ``"ok"`` when valid, otherwise
    one of ``"malformed: ..."``, ``"unsupported algorithm: ..."``, ``"unknown key id: ..."``,
    ``"bad signature"``."""

    valid: bool
    reason: str
    key_id: str | None = None

    def __bool__(self) -> bool:
        return self.valid

    def to_dict(self) -> dict:
        """``{"valid", "reason", "key_id"}``."""
        return {"valid": self.valid, "reason": self.reason, "key_id": self.key_id}


def _as_public(k) -> Ed25519PublicKey:
    if isinstance(k, Ed25519PublicKey):
        return k
    if isinstance(k, Ed25519PrivateKey):
        return k.public_key()
    return load_public_key(k)


def verify_certificate(
    certificate: dict | str | bytes, public_keys: Mapping[str, Ed25519PublicKey | str | bytes]
) -> VerificationResult:
    """Check a signed certificate against published public keys (RFC 8032 §5.1.7).

    Args:
        certificate: the dict from :func:`sign_certificate`, or its JSON text/bytes.
        public_keys: ``{key_id: Ed25519PublicKey or PEM}``. A key id is only trusted if the
            key it maps to actually hashes to that id.

    Returns a :class:`VerificationResult`; never raises for bad input. Checks, in order:
    structure (keys ``payload`` dict, ``signature`` base64 of 64 bytes, ``key_id`` str,
    ``algorithm`` str), algorithm == ``"Ed25519"``, key id known, signature over
    ``canonical_json(payload)``.
    """
    try:
        if isinstance(certificate, (bytes, bytearray)):
            certificate = certificate.decode("utf-8")
        if isinstance(certificate, str):
            certificate = json.loads(certificate)
    except (UnicodeDecodeError, ValueError) as e:
        return VerificationResult(False, f"malformed: not valid JSON ({e.__class__.__name__})")
    if not isinstance(certificate, dict):
        return VerificationResult(False, "malformed: certificate is not a JSON object")
    missing = [k for k in ("payload", "signature", "key_id", "algorithm") if k not in certificate]
    if missing:
        return VerificationResult(False, f"malformed: missing field(s) {', '.join(missing)}")
    extra = sorted(set(certificate) - {"payload", "signature", "key_id", "algorithm"})
    if extra:
        return VerificationResult(False, f"malformed: unexpected field(s) {', '.join(extra)}")
    payload, sig_b64, kid, alg = (
        certificate[k] for k in ("payload", "signature", "key_id", "algorithm")
    )
    if not isinstance(payload, dict):
        return VerificationResult(False, "malformed: payload is not an object")
    if not isinstance(kid, str) or not isinstance(alg, str) or not isinstance(sig_b64, str):
        return VerificationResult(
            False, "malformed: signature, key_id and algorithm must be strings"
        )
    if alg != ALGORITHM:
        return VerificationResult(
            False, f"unsupported algorithm: {alg!r} (expected {ALGORITHM})", kid
        )
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except (binascii.Error, ValueError):
        return VerificationResult(False, "malformed: signature is not base64", kid)
    if len(sig) != 64:
        return VerificationResult(
            False, f"malformed: Ed25519 signature must be 64 bytes, got {len(sig)}", kid
        )
    if kid not in public_keys:
        return VerificationResult(False, f"unknown key id: {kid}", kid)
    try:
        pub = _as_public(public_keys[kid])
    except (ValueError, TypeError):
        return VerificationResult(False, f"unknown key id: {kid} (published key unreadable)", kid)
    if key_id(pub) != kid:
        return VerificationResult(
            False, f"unknown key id: {kid} (published key does not match the id)", kid
        )
    try:
        message = canonical_json(payload)
    except (TypeError, ValueError) as e:
        return VerificationResult(
            False, f"malformed: payload not canonical-JSON serialisable ({e})", kid
        )
    try:
        pub.verify(sig, message)
    except InvalidSignature:
        return VerificationResult(False, "bad signature", kid)
    return VerificationResult(True, "ok", kid)


def _render_value(v: Any) -> str:
    if isinstance(v, dict):
        if not v:
            return "<em>{}</em>"
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{_render_value(v[k])}</td></tr>"
            for k in sorted(v, key=str)
        )
        return f"<table>{rows}</table>"
    if isinstance(v, (list, tuple)):
        if not v:
            return "<em>[]</em>"
        return "<ol>" + "".join(f"<li>{_render_value(x)}</li>" for x in v) + "</ol>"
    if v is None:
        return "<em>null</em>"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return html.escape(str(v))


def render_certificate_html(
    certificate: dict, verification: VerificationResult | None = None
) -> str:
    """A self-contained HTML page showing a signed certificate for humans (DESIGN §8).

    Every key and value is HTML-escaped (``html.escape``), so payload text cannot inject
    markup. The checks table (``payload["verdicts"]["checks"]`` if present) and the
    ``not_verified`` / ``limitations`` statements are shown first, then the full payload.
    ``verification`` (optional) adds a banner with the verification outcome.
    """
    e = html.escape
    payload = certificate.get("payload", {}) if isinstance(certificate, dict) else {}
    if not isinstance(payload, dict):
        payload = {"payload": payload}
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Unlearning certificate '
        f"{e(str(payload.get('certificate_id', '')))}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
        ".pass{color:#060}.fail{color:#a00}</style></head><body>",
        f"<h1>Unlearning certificate {e(str(payload.get('certificate_id', '')))}</h1>",
    ]
    if verification is not None:
        cls = "pass" if verification.valid else "fail"
        parts.append(
            f'<p class="{cls}"><strong>Signature: {e("valid" if verification.valid else "INVALID")}'
            f"</strong> ({e(verification.reason)})</p>"
        )
    parts.append(
        "<p>Algorithm: "
        + e(str(certificate.get("algorithm", "")))
        + "; key id: "
        + e(str(certificate.get("key_id", "")))
        + "</p>"
    )
    verdicts = payload.get("verdicts") if isinstance(payload.get("verdicts"), dict) else None
    if verdicts and isinstance(verdicts.get("checks"), list):
        parts.append(
            "<h2>Checks</h2><table><tr><th>check</th><th>value</th><th>95% CI</th>"
            "<th>threshold</th><th>result</th><th>detail</th></tr>"
        )
        for c in verdicts["checks"]:
            if not isinstance(c, dict):
                continue
            res = (
                "pass"
                if c.get("passed")
                else ("undefined" if c.get("status") == "undefined" else "fail")
            )
            parts.append(
                "<tr>"
                + "".join(
                    f"<td>{_render_value(c.get(k))}</td>"
                    for k in ("name", "value", "ci95", "threshold")
                )
                + f'<td class="{"pass" if res == "pass" else "fail"}">{e(res)}</td>'
                + f"<td>{_render_value(c.get('detail'))}</td></tr>"
            )
        parts.append("</table>")
    for key in ("not_verified", "limitations"):
        items = payload.get(key) or (verdicts or {}).get(key)
        if isinstance(items, list) and items:
            parts.append(
                f"<h2>{e('What was not verified' if key == 'not_verified' else 'Limitations')}</h2>"
            )
            parts.append("<ul>" + "".join(f"<li>{e(str(x))}</li>" for x in items) + "</ul>")
    parts.append("<h2>Signed payload</h2>" + _render_value(payload))
    parts.append(
        "<h2>Signature</h2><p><code>" + e(str(certificate.get("signature", ""))) + "</code></p>"
    )
    parts.append("</body></html>")
    return "".join(parts)
