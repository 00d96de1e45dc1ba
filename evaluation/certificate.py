"""Canonical JSON, Ed25519 signing and strict verification of certificates (DESIGN §8).

- Canonical JSON: ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
  allow_nan=False)`` encoded as UTF-8 (keys sorted by code point, no insignificant
  whitespace, NaN/Infinity rejected). Python's float ``repr`` is the shortest round-trip
  form, so equal values serialise to equal bytes.
- Signature: Ed25519 (RFC 8032 §5.1, pure Ed25519 over the canonical payload bytes) with
  ``cryptography``; signature transported as standard base64.
- Key id: the first 16 hex characters of sha256(raw 32-byte public key).
- Verification parses documents with :func:`evaluation.strict_json.strict_loads` (duplicate
  keys, NaN, non-canonical numbers refused) and checks the key against the published key set
  (:mod:`evaluation.certificate_keys`: unknown key, key used outside its validity).

Standalone verifier for auditors (no Django, never creates or reads a private key)::

    python -m evaluation.certificate verify CERTIFICATE.json --keys KEYS.json

exit status 0 = VALID, 1 = INVALID (reason on stderr), 2 = the keys file is unusable.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .certificate_html import check_result, render_certificate_html
from .certificate_keys import (
    KeySetError,
    PublishedKey,
    keyset_load_file,
    parse_timestamp,
    raw_key_id,
)
from .strict_json import StrictJSONError, strict_loads

__all__ = [
    "ALGORITHM",
    "VerificationResult",
    "canonical_json",
    "check_result",
    "load_or_create_signing_key",
    "load_public_key",
    "parse_document",
    "public_key_pem",
    "key_id",
    "sign_certificate",
    "verify_certificate",
    "render_certificate_html",
    "verify_file",
    "main",
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


def key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """First 16 hex characters of sha256(raw 32-byte Ed25519 public key, RFC 8032 §5.1.5).
    A private key is accepted and its public key used. Raises ``TypeError`` for other keys."""
    return raw_key_id(public_key)


def load_or_create_signing_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Issuer side only: load an unencrypted PKCS#8 PEM Ed25519 private key from ``path``; if
    the file does not exist, generate one (RFC 8032) and write it with mode 0600 (parent
    directories are created). Raises ``ValueError``/``TypeError`` if the file is not an Ed25519
    PEM key. Verification never calls this (see :func:`verify_certificate`)."""
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
    canonical-JSON serialisable (e.g. contains NaN, or a lone surrogate in a string) or does not
    re-parse strictly to the same bytes — what is signed must be what a verifier reads.
    """
    if not isinstance(payload, dict):
        raise TypeError("payload must be a dict")
    message = canonical_json(payload)
    if canonical_json(strict_loads(message)) != message:  # pragma: no cover - canonical by construction
        raise ValueError("payload does not survive a strict JSON round trip")
    sig = private_key.sign(message)
    return {
        "payload": payload,
        "signature": base64.b64encode(sig).decode("ascii"),
        "key_id": key_id(private_key.public_key()),
        "algorithm": ALGORITHM,
    }


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of :func:`verify_certificate`. ``reason`` is ``"ok"`` when valid, otherwise
    one of ``"malformed JSON: ..."`` (strict parsing), ``"malformed: ..."`` (structure),
    ``"unsupported algorithm: ..."``, ``"signed by an unknown key: ..."``, ``"bad signature"``,
    ``"key used outside its validity: ..."``. ``key_status`` is the published key's status
    (``current``/``retired``) when known."""

    valid: bool
    reason: str
    key_id: str | None = None
    key_status: str | None = None
    audit_log: dict | None = None

    def __bool__(self) -> bool:
        return self.valid

    def to_dict(self) -> dict:
        """``{"valid", "reason", "key_id", "key_status", "audit_log"}``; ``audit_log`` is
        ``{"tree_size", "root_hash", "leaf_index", "tree_head_issued_at"}`` of a verified embedded
        inclusion proof, else ``None``."""
        return {"valid": self.valid, "reason": self.reason, "key_id": self.key_id,
                "key_status": self.key_status, "audit_log": self.audit_log}


def parse_document(data: bytes | str, *, max_depth: int = 64) -> dict:
    """Strictly parse a certificate document (``evaluation.strict_json``) and check it is an
    object; nesting beyond ``max_depth`` levels is refused. Raises
    :class:`evaluation.strict_json.StrictJSONError` with the reason."""
    document = strict_loads(data, max_depth=max_depth)
    if not isinstance(document, dict):
        raise StrictJSONError("a certificate is a JSON object")
    return document


def _as_published(kid: str, k) -> PublishedKey:
    if isinstance(k, PublishedKey):
        return k
    if isinstance(k, Ed25519PrivateKey):
        k = k.public_key()
    if not isinstance(k, Ed25519PublicKey):
        k = load_public_key(k)
    return PublishedKey(raw_key_id(k), k)  # a bare key: no validity window recorded


def _structure(certificate: dict) -> tuple[VerificationResult | None, tuple]:
    fields = ("payload", "signature", "key_id", "algorithm")
    missing = [k for k in fields if k not in certificate]
    if missing:
        return VerificationResult(False, f"malformed: missing field(s) {', '.join(missing)}"), ()
    extra = sorted(set(certificate) - set(fields) - {"transparency"})
    if extra:
        return VerificationResult(False, f"malformed: unexpected field(s) {', '.join(extra)}"), ()
    payload, sig_b64, kid, alg = (certificate[k] for k in fields)
    if not isinstance(payload, dict):
        return VerificationResult(False, "malformed: payload is not an object"), ()
    if not isinstance(kid, str) or not isinstance(alg, str) or not isinstance(sig_b64, str):
        return VerificationResult(False, "malformed: signature, key_id and algorithm must be strings"), ()
    if alg != ALGORITHM:
        return VerificationResult(False, f"unsupported algorithm: {alg!r} (expected {ALGORITHM})", kid), ()
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except (binascii.Error, ValueError):
        return VerificationResult(False, "malformed: signature is not base64", kid), ()
    if len(sig) != 64:
        return VerificationResult(False, f"malformed: Ed25519 signature must be 64 bytes, got {len(sig)}", kid), ()
    return None, (payload, sig, kid)


def verify_certificate(
    certificate: dict | str | bytes,
    public_keys: Mapping[str, PublishedKey | Ed25519PublicKey | str | bytes],
) -> VerificationResult:
    """Check a signed document against published public keys (RFC 8032 §5.1.7).

    Args:
        certificate: JSON bytes/text (parsed strictly: duplicate keys, NaN/Infinity and
            non-canonical numbers are INVALID), or an already parsed dict.
        public_keys: ``{key_id: PublishedKey | Ed25519PublicKey | PEM}`` — e.g.
            :func:`evaluation.certificate_keys.keyset_load_file`. A key id is trusted only if the
            key hashes to it; a :class:`PublishedKey` also bounds the certificate's
            ``issued_at`` to its validity window. Never a private key is created or read.

    Returns a :class:`VerificationResult`; never raises for bad input. Order of checks:
    strict JSON, structure, algorithm, signature encoding, key known, canonical payload,
    signature, key validity at ``payload["issued_at"]``.
    """
    if isinstance(certificate, (bytes, bytearray, str)):
        try:
            certificate = parse_document(certificate)
        except StrictJSONError as exc:
            return VerificationResult(False, f"malformed JSON: {exc.reason}")
    if not isinstance(certificate, dict):
        return VerificationResult(False, "malformed: certificate is not a JSON object")
    problem, parts = _structure(certificate)
    if problem is not None:
        return problem
    payload, sig, kid = parts
    if kid not in public_keys:
        return VerificationResult(False, f"signed by an unknown key: key id {kid} is not published", kid)
    try:
        published = _as_published(kid, public_keys[kid])
    except (ValueError, TypeError):
        return VerificationResult(False, f"signed by an unknown key: key id {kid} (published key unreadable)", kid)
    if published.key_id != kid:
        return VerificationResult(
            False, f"signed by an unknown key: key id {kid} (published key does not match the id)", kid)
    try:
        message = canonical_json(payload)
        if canonical_json(strict_loads(message)) != message:
            raise ValueError("does not survive a strict round trip")
    except (TypeError, ValueError) as e:  # UnicodeEncodeError (lone surrogate) is a ValueError
        return VerificationResult(False, f"malformed: payload is not canonical JSON ({e})", kid)
    try:
        published.public_key.verify(sig, message)
    except InvalidSignature:
        return VerificationResult(False, "bad signature", kid, published.status)
    try:
        issued_at = parse_timestamp(payload.get("issued_at"), "issued_at")
    except ValueError:
        issued_at = None
    problem = published.validity_problem(issued_at)
    if problem is not None:
        return VerificationResult(False, f"key used outside its validity: {problem}", kid, published.status)
    if "transparency" in certificate or "audit_log" in payload:
        return _transparency_result(certificate, payload, public_keys, kid, published.status)
    return VerificationResult(True, "ok", kid, published.status)


def _transparency_result(certificate: dict, payload: dict, public_keys, kid: str, status) -> VerificationResult:
    """Check the embedded audit-log inclusion proof (:mod:`evaluation.audit_log`): the tree head's
    signature with the same published keys, then the issuance event's audit path to its root."""
    from .audit_log import INCLUSION_SCHEMA, inclusion_block_problem, tree_head_parse

    def bad(reason: str) -> VerificationResult:
        return VerificationResult(False, f"audit-log proof: {reason}", kid, status)

    declared = payload.get("audit_log")
    if declared is not None and declared != {"inclusion": INCLUSION_SCHEMA}:
        return bad(f"the payload's audit_log must be {{'inclusion': {INCLUSION_SCHEMA!r}}}")
    block = certificate.get("transparency")
    if block is None:
        return bad("the payload declares an embedded inclusion proof and the document has none")
    head = block.get("tree_head") if isinstance(block, dict) else None
    if not isinstance(head, dict) or "transparency" in head:
        return bad("no signed tree head")
    head_result = verify_certificate(head, public_keys)
    if not head_result.valid:
        return bad(f"the signed tree head does not verify: {head_result.reason}")
    try:
        size, root = tree_head_parse(head["payload"])
    except ValueError as exc:
        return bad(str(exc))
    problem = inclusion_block_problem(block, payload, (size, root))
    if problem is not None:
        return bad(problem)
    summary = {"tree_size": size, "root_hash": root.hex(), "leaf_index": block["leaf_index"],
               "tree_head_issued_at": head["payload"].get("issued_at")}
    return VerificationResult(True, "ok", kid, status, summary)


def _describe(document: dict, result: VerificationResult) -> str:
    payload = document.get("payload", {})
    if payload.get("schema") == "audit-tree-head/1":
        return (f"VALID: audit-log signed tree head (size {payload.get('tree_size')}, root {payload.get('root_hash')}) "
                f"issued {payload.get('issued_at')} by {payload.get('issuer')} (key {result.key_id})")
    kind = ("suppression notice (NOT an erasure certificate)"
            if payload.get("schema") == "suppression-notice/1" else "erasure certificate")
    line = (f"VALID: {kind} {payload.get('certificate_id')} issued {payload.get('issued_at')} "
            f"by {payload.get('issuer')} (key {result.key_id}, {result.key_status or 'no status'})")
    if result.audit_log:
        log = result.audit_log
        line += (f"; issuance event is leaf {log['leaf_index']} of the audit log's signed tree head "
                 f"(size {log['tree_size']}, root {log['root_hash']})")
    else:
        line += "; no audit-log inclusion proof embedded"
    return line


def verify_file(certificate_path: str, keys: Mapping) -> tuple[int, str]:
    """(exit status, line) for the certificate file at ``certificate_path`` ('-' = stdin):
    0 and ``"VALID: ..."``, or 1 and ``"INVALID: <reason>"``. Used by the CLI below and by
    ``manage.py verify_certificate``."""
    try:
        raw = sys.stdin.buffer.read() if certificate_path == "-" else Path(certificate_path).read_bytes()
    except OSError as exc:
        return 1, f"INVALID: cannot read certificate: {exc.strerror or exc}"
    try:
        document = parse_document(raw)
    except StrictJSONError as exc:
        return 1, f"INVALID: cannot read certificate: malformed JSON: {exc.reason}"
    result = verify_certificate(document, keys)
    if not result.valid:
        return 1, f"INVALID: {result.reason}"
    return 0, _describe(document, result)


def main(argv: list[str] | None = None) -> int:
    """``python -m evaluation.certificate verify FILE --keys KEYS.json`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m evaluation.certificate",
                                     description="Verify a signed erasure certificate with published keys only.")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="verify a certificate (exit 0 VALID, 1 INVALID, 2 unusable keys)")
    v.add_argument("file", help="certificate JSON file ('-' for standard input)")
    v.add_argument("--keys", required=True,
                   help="published key set (GET /api/v1/certificates/keys/ or "
                        "/.well-known/erasure-certificate-keys.json)")
    args = parser.parse_args(argv)
    try:
        keys = keyset_load_file(args.keys)
    except KeySetError as exc:
        print(f"ERROR: unusable key set: {exc}", file=sys.stderr)
        return 2
    status, line = verify_file(args.file, keys)
    print(line, file=sys.stdout if status == 0 else sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
