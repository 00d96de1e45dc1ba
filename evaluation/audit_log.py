"""The audit trail as a verifiable log (Certificate Transparency style, RFC 6962 / RFC 9162): the
formats an auditor needs offline. No Django.

- **Leaf**: one audit event as canonical JSON (:func:`evaluation.certificate.canonical_json`) of
  exactly the fields :data:`LEAF_FIELDS`; its leaf hash is ``SHA-256(0x00 || leaf bytes)``
  (RFC 6962 §2.1, :func:`evaluation.merkle.leaf_hash`).
- **Signed tree head** (schema ``audit-tree-head/1``, the STH of RFC 6962 §3.5 / RFC 9162 §4.10 in
  this project's envelope): ``{"payload": {"schema", "issuer", "tree_size", "root_hash" (hex),
  "issued_at" (ISO 8601 UTC), "hash_algorithm": "SHA-256"}, "signature", "key_id", "algorithm"}``,
  signed with the certificate keys (same key ids, same validity rule at ``issued_at``).
- **Inclusion block** (schema ``audit-inclusion/1``), embedded as ``transparency`` next to a
  certificate's signed payload: ``{"schema", "tree_head": <signed tree head>, "leaf_index",
  "leaf": <event fields>, "inclusion_proof": [hex, ...]}``. The leaf is the certificate's own
  issuance event, whose ``after.payload_sha256`` is ``sha256(canonical_json(payload))``; the proof
  is the RFC 6962 §2.1.1 audit path to the tree head's root. A log truncated or rewritten after
  issuance can no longer show this leaf at this index under a head consistent with this one.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from . import merkle
from .certificate import canonical_json

__all__ = [
    "INCLUSION_SCHEMA",
    "ISSUANCE_VERBS",
    "LEAF_FIELDS",
    "TREE_HEAD_SCHEMA",
    "audit_leaf_bytes",
    "audit_leaf_hash",
    "inclusion_block",
    "inclusion_block_problem",
    "tree_head_parse",
    "tree_head_payload",
]

TREE_HEAD_SCHEMA = "audit-tree-head/1"
INCLUSION_SCHEMA = "audit-inclusion/1"
LEAF_FIELDS = ("id", "timestamp", "actor", "verb", "object_type", "object_id", "before", "after")
ISSUANCE_VERBS = ("certificate.issued", "suppression_notice.issued")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def audit_leaf_bytes(event: Mapping) -> bytes:
    """Canonical JSON of the event's :data:`LEAF_FIELDS` (``id`` is the event's sequence number).
    Raises ``ValueError`` naming a missing field; extra keys are ignored."""
    missing = [f for f in LEAF_FIELDS if f not in event]
    if missing:
        raise ValueError(f"audit event lacks {', '.join(missing)}")
    return canonical_json({f: event[f] for f in LEAF_FIELDS})


def audit_leaf_hash(event: Mapping) -> bytes:
    """``SHA-256(0x00 || audit_leaf_bytes(event))`` (32 bytes)."""
    return merkle.leaf_hash(audit_leaf_bytes(event))


def tree_head_payload(*, tree_size: int, root_hash: bytes, issued_at: str, issuer: str) -> dict:
    """The payload of a signed tree head (to sign with :func:`evaluation.certificate.sign_certificate`)."""
    return {"schema": TREE_HEAD_SCHEMA, "issuer": issuer, "tree_size": int(tree_size),
            "root_hash": root_hash.hex(), "issued_at": issued_at, "hash_algorithm": "SHA-256"}


def tree_head_parse(payload) -> tuple[int, bytes]:
    """``(tree_size, root_hash)`` of a tree head payload; ``ValueError`` with the reason when it is
    not an ``audit-tree-head/1`` payload (the signature is checked elsewhere)."""
    if not isinstance(payload, dict) or payload.get("schema") != TREE_HEAD_SCHEMA:
        raise ValueError(f"not a signed tree head (schema {TREE_HEAD_SCHEMA!r})")
    size, root = payload.get("tree_size"), payload.get("root_hash")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("tree_size must be a non-negative integer")
    if not isinstance(root, str) or not _HEX64.fullmatch(root):
        raise ValueError("root_hash must be 64 lowercase hex characters")
    if payload.get("hash_algorithm") != "SHA-256":
        raise ValueError("hash_algorithm must be SHA-256")
    return size, bytes.fromhex(root)


def inclusion_block(*, tree_head: dict, leaf_index: int, leaf: dict, proof: list[bytes]) -> dict:
    """The ``transparency`` block of a certificate (see the module docstring)."""
    return {"schema": INCLUSION_SCHEMA, "tree_head": tree_head, "leaf_index": int(leaf_index),
            "leaf": {f: leaf[f] for f in LEAF_FIELDS}, "inclusion_proof": [p.hex() for p in proof]}


def payload_digest(payload: dict) -> str:
    """``sha256(canonical_json(payload))`` hex: what the issuance event records of a certificate."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def _leaf_problem(leaf, payload: dict) -> str | None:
    if not isinstance(leaf, dict):
        return "the leaf is not an object"
    if leaf.get("verb") not in ISSUANCE_VERBS or leaf.get("object_type") != "Certificate":
        return "the leaf is not a certificate issuance event"
    if leaf.get("object_id") != payload.get("certificate_id"):
        return "the leaf is the issuance event of another certificate"
    after = leaf.get("after")
    if not isinstance(after, dict) or after.get("payload_sha256") != payload_digest(payload):
        return "the issuance event records another payload digest"
    return None


def inclusion_block_problem(block, payload: dict, tree_head_size_root: tuple[int, bytes]) -> str | None:
    """``None`` when ``block`` proves that the issuance event of ``payload`` is in the tree whose
    (already signature-checked) head is ``(tree_size, root_hash)``; otherwise the reason. Never raises."""
    if not isinstance(block, dict) or block.get("schema") != INCLUSION_SCHEMA:
        return f"not an {INCLUSION_SCHEMA} block"
    index, proof_hex, leaf = block.get("leaf_index"), block.get("inclusion_proof"), block.get("leaf")
    if not isinstance(index, int) or isinstance(index, bool):
        return "leaf_index must be an integer"
    if not isinstance(proof_hex, list) or not all(isinstance(p, str) and _HEX64.fullmatch(p) for p in proof_hex):
        return "inclusion_proof must be a list of 64-character hex hashes"
    problem = _leaf_problem(leaf, payload)
    if problem:
        return problem
    try:
        leaf_h = audit_leaf_hash(leaf)
    except (TypeError, ValueError) as exc:
        return f"the leaf is not canonical JSON ({exc})"
    size, root = tree_head_size_root
    try:
        merkle.verify_inclusion(index, size, leaf_h, [bytes.fromhex(p) for p in proof_hex], root)
    except merkle.ProofError as exc:
        return str(exc)
    return None
