"""The audit trail as a verifiable log (issue 17; Certificate Transparency, RFC 6962 §2.1 / RFC 9162 §2.1).

- **Sealer** (:func:`audit_log_seal`; periodic task ``audit_log_seal_task``, ``manage.py audit_log_seal``,
  and synchronously at certificate issuance): appends every visible unsealed event, in id order, as
  the next leaves of the Merkle tree (``AuditLeaf``) and stores a signed tree head (``SignedTreeHead``,
  Ed25519 with the certificate keys). Only sealers take the seal lock (a PostgreSQL transaction-scoped
  advisory lock); writers of events never wait for it. An event whose id is smaller than a sealed one
  but commits later simply becomes a later leaf: the leaf index, not the id, is the log's order.
- **Proofs**: :func:`audit_inclusion_proof` (RFC 6962 §2.1.1) and :func:`audit_consistency_proof`
  (§2.1.2), built from the stored leaf hashes (O(tree size) reads; fine at the audit trail's volume).
- **Verification** (:func:`audit_log_verify`): every tree head's signature, every event against its
  leaf hash, every leaf row present, the root of the stored leaves at every signed tree size, and
  the tree heads embedded in issued certificates (or given by an auditor) as external anchors.
  What a table owner can still do unseen with the database alone: delete the newest events
  *together with* their leaves and the tree heads that cover them, back to an earlier head. That is
  why certificates embed a tree head and an auditor keeps one: such a truncation or any rewrite
  before an anchor shows as an anchor the log no longer matches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction

from evaluation import merkle
from evaluation.audit_log import (
    audit_leaf_hash,
    inclusion_block,
    tree_head_parse,
    tree_head_payload,
)
from evaluation.certificate import canonical_json, verify_certificate
from evaluation.certificate_keys import KeySetError

from . import certificate_keys
from .audit import GENESIS_HASH, audit_event_expected_hash, audit_event_leaf
from .models import AuditEvent, AuditLeaf, Certificate, SignedTreeHead

SEAL_LOCK_KEY = 0x7365616C  # "seal"


class AuditLogError(RuntimeError):
    """The log cannot be sealed or proven (the reason is the message)."""


def tree_head_latest() -> SignedTreeHead | None:
    """The newest signed tree head, or ``None`` before the first seal."""
    return SignedTreeHead.objects.order_by("-tree_size").first()


def _sign_tree_head(size: int, root: bytes, frontier: list[bytes]) -> SignedTreeHead:
    document = certificate_keys.certificate_sign(lambda now: tree_head_payload(
        tree_size=size, root_hash=root, issued_at=now.isoformat(), issuer=settings.CERTIFICATE_ISSUER))
    payload = document["payload"]
    return SignedTreeHead.objects.create(
        tree_size=size, root_hash=root.hex(), issued_at=datetime.fromisoformat(payload["issued_at"]),
        signed_payload=canonical_json(payload).decode("utf-8"), signature=document["signature"],
        key_id=document["key_id"], algorithm=document["algorithm"], frontier=[h.hex() for h in frontier])


def audit_log_seal(*, max_leaves: int | None = None) -> SignedTreeHead | None:
    """Append the unsealed events visible to this transaction (at most ``max_leaves``, oldest id
    first) and sign a tree head over the whole tree. Runs in its own (or the caller's) transaction;
    called inside a mutation's transaction it seals that transaction's own events too, and its leaves
    and head commit or roll back with it. Returns the new head, or the latest one when nothing was
    unsealed (``None`` for an empty log).

    Raises :class:`AuditLogError` when an unsealed event's content no longer matches its hash
    (nothing is sealed then: a tampered event must not become part of the signed log), or when the
    latest head's frontier is unusable.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
        head = tree_head_latest()
        size = head.tree_size if head else 0
        try:
            frontier = [bytes.fromhex(h) for h in head.frontier] if head else []
        except (TypeError, ValueError) as exc:
            raise AuditLogError(f"the frontier of tree head {size} is unreadable: {exc}") from None
        pending = AuditEvent.objects.filter(leaf__isnull=True).order_by("id")
        if max_leaves is not None:
            pending = pending[:max_leaves]
        leaves = []
        for event in pending.iterator(chunk_size=2000):
            if audit_event_expected_hash(event) != event.hash:
                raise AuditLogError(f"event {event.id} does not match its hash: refusing to seal it")
            h = audit_leaf_hash(audit_event_leaf(event))
            leaves.append(AuditLeaf(leaf_index=size, event_id=event.id, leaf_hash=h.hex()))
            try:
                frontier = merkle.frontier_append(frontier, size, h)
            except ValueError as exc:
                raise AuditLogError(f"tree head {head.tree_size}: {exc}") from None
            size += 1
        if not leaves:
            return head
        AuditLeaf.objects.bulk_create(leaves, batch_size=1000)
        return _sign_tree_head(size, merkle.frontier_root(frontier), frontier)


def _leaf_hashes(size: int) -> list[bytes]:
    hashes = [bytes.fromhex(h) for h in AuditLeaf.objects.filter(leaf_index__lt=size)
              .order_by("leaf_index").values_list("leaf_hash", flat=True)]
    if len(hashes) != size:
        raise AuditLogError(f"the log holds {len(hashes)} of the {size} leaves of its tree head")
    return hashes


def _head_at(tree_size: int | None) -> SignedTreeHead:
    head = (tree_head_latest() if tree_size is None
            else SignedTreeHead.objects.filter(tree_size=tree_size).first())
    if head is None:
        raise AuditLogError("no signed tree head" + (f" of size {tree_size}" if tree_size is not None else ""))
    return head


def audit_inclusion_proof(event: AuditEvent, *, tree_size: int | None = None) -> dict:
    """``{"leaf_index", "tree_size", "inclusion_proof": [hex], "tree_head": <signed document>}`` for a
    sealed event, against the head of ``tree_size`` (default: the latest). Raises
    :class:`AuditLogError` when the event is unsealed or not in that tree."""
    leaf = AuditLeaf.objects.filter(event_id=event.id).first()
    if leaf is None:
        raise AuditLogError(f"event {event.id} is not sealed yet")
    head = _head_at(tree_size)
    if leaf.leaf_index >= head.tree_size:
        raise AuditLogError(f"event {event.id} (leaf {leaf.leaf_index}) is not in the tree of size {head.tree_size}")
    proof = merkle.inclusion_proof(_leaf_hashes(head.tree_size), leaf.leaf_index)
    return {"leaf_index": leaf.leaf_index, "tree_size": head.tree_size,
            "inclusion_proof": [p.hex() for p in proof], "tree_head": head.as_document()}


def audit_consistency_proof(first: int, second: int | None = None) -> dict:
    """``{"first", "second", "consistency_proof": [hex], "first_tree_head", "second_tree_head"}``
    between two signed tree heads (RFC 6962 §2.1.2). Raises :class:`AuditLogError` for unknown sizes."""
    head2 = _head_at(second)
    if not 0 <= first <= head2.tree_size:
        raise AuditLogError(f"tree size {first} is not in [0, {head2.tree_size}]")
    head1 = SignedTreeHead.objects.filter(tree_size=first).first()
    proof = merkle.consistency_proof(_leaf_hashes(head2.tree_size), first)
    return {"first": first, "second": head2.tree_size, "consistency_proof": [p.hex() for p in proof],
            "first_tree_head": head1.as_document() if head1 else None, "second_tree_head": head2.as_document()}


def audit_certificate_transparency(event: AuditEvent) -> dict:
    """Seal now (inside the issuing transaction) and return the ``audit-inclusion/1`` block for a
    certificate's issuance ``event`` (:func:`evaluation.audit_log.inclusion_block`)."""
    head = audit_log_seal()
    proof = audit_inclusion_proof(event, tree_size=head.tree_size)
    return inclusion_block(tree_head=proof["tree_head"], leaf_index=proof["leaf_index"],
                           leaf=audit_event_leaf(event),
                           proof=[bytes.fromhex(p) for p in proof["inclusion_proof"]])


@dataclass
class ChainVerification:
    """Outcome of :func:`audit_log_verify`. ``valid`` is False on any problem; ``first_bad_id`` is
    the first event found missing or changed; ``reason`` the first problem (``""`` when valid).
    ``missing_leaves``: leaf indices below the tree size with no leaf row; ``missing_events`` /
    ``changed_events``: ``{"leaf_index", "event_id"}`` of leaves whose event row is gone / whose event
    no longer hashes to its leaf; ``unmatched_tree_heads``: signed heads (or anchors) the stored leaves
    no longer reproduce, with the leaf range in which the change lies."""

    valid: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""
    tree_size: int = 0
    root_hash: str | None = None
    unsealed: int = 0
    missing_leaves: list = field(default_factory=list)
    missing_events: list = field(default_factory=list)
    changed_events: list = field(default_factory=list)
    unmatched_tree_heads: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """All fields, JSON-ready (lists capped at 100 entries each)."""
        cap = 100
        return {"valid": self.valid, "checked": self.checked, "first_bad_id": self.first_bad_id,
                "reason": self.reason, "tree_size": self.tree_size, "root_hash": self.root_hash,
                "unsealed": self.unsealed, "missing_leaves": self.missing_leaves[:cap],
                "missing_events": self.missing_events[:cap], "changed_events": self.changed_events[:cap],
                "unmatched_tree_heads": self.unmatched_tree_heads[:cap], "problems": self.problems[:cap]}


def _anchor_heads(anchors) -> list[tuple[str, dict]]:
    """(label, signed tree head document) of the certificates' embedded heads plus ``anchors``."""
    out = []
    for public_id, block in Certificate.objects.exclude(transparency=None).values_list("public_id", "transparency"):
        if isinstance(block, dict) and isinstance(block.get("tree_head"), dict):
            out.append((f"certificate {public_id}", block["tree_head"]))
    for i, doc in enumerate(anchors):
        out.append((f"given tree head #{i + 1}", doc))
    return out


def _signed_sizes(heads, anchors, keys, result: ChainVerification) -> dict[int, list[tuple[str, bytes]]]:
    """tree size → [(label, signed root)] for every tree head whose signature verifies."""
    sizes: dict[int, list[tuple[str, bytes]]] = {}
    labelled = [(f"tree head {h.tree_size}", h.as_document()) for h in heads] + _anchor_heads(anchors)
    for label, doc in labelled:
        check = verify_certificate(doc, keys)
        try:
            size, root = tree_head_parse(doc.get("payload") if isinstance(doc, dict) else None)
        except ValueError as exc:
            result.problems.append(f"{label}: {exc}")
            continue
        if not check.valid:
            result.problems.append(f"{label}: signature does not verify ({check.reason})")
            continue
        sizes.setdefault(size, []).append((label, root))
    return sizes


def _check_leaves(leaves: dict, events: dict, size: int, result: ChainVerification) -> None:
    for index in range(size):
        row = leaves.get(index)
        if row is None:
            result.missing_leaves.append(index)
            continue
        event_id, stored = row
        if event_id not in events:
            result.missing_events.append({"leaf_index": index, "event_id": event_id})
        elif events[event_id] != stored:
            result.changed_events.append({"leaf_index": index, "event_id": event_id})
    if result.missing_leaves:
        result.problems.append(f"{len(result.missing_leaves)} leaves of the signed tree are missing "
                               f"(first: leaf {result.missing_leaves[0]})")
    if result.missing_events:
        first = result.missing_events[0]
        result.problems.append(f"{len(result.missing_events)} sealed events are missing (first: event "
                               f"{first['event_id']}, leaf {first['leaf_index']})")
    if result.changed_events:
        first = result.changed_events[0]
        result.problems.append(f"{len(result.changed_events)} sealed events no longer match their leaf "
                               f"(first: event {first['event_id']}, leaf {first['leaf_index']})")
    beyond = sorted(i for i in leaves if i >= size)
    if beyond:
        result.problems.append(f"{len(beyond)} leaves lie beyond the latest signed tree head (size {size}): "
                               "a newer tree head was removed")


def _check_roots(leaves: dict, sizes: dict, result: ChainVerification) -> None:
    """Fold the stored leaf hashes once; compare the root at every signed size. Heads larger than
    the stored run of leaves ``0..k-1`` are reported as a truncated log."""
    available = 0
    while available in leaves:
        available += 1
    frontier: list[bytes] = []
    previous = 0
    for size in sorted(sizes):
        if size > available:
            for label, _ in sizes[size]:
                result.unmatched_tree_heads.append({"tree_head": label, "tree_size": size,
                                                    "leaves_from": available, "leaves_to": size})
                result.problems.append(f"{label} signs {size} leaves; the log holds {available}: "
                                       "the log was truncated")
            continue
        for index in range(previous, size):
            frontier = merkle.frontier_append(frontier, index, bytes.fromhex(leaves[index][1]))
        root = merkle.frontier_root(frontier)
        for label, signed in sizes[size]:
            if signed != root:
                result.unmatched_tree_heads.append({"tree_head": label, "tree_size": size,
                                                    "leaves_from": previous, "leaves_to": size})
                result.problems.append(f"the first {size} leaves do not hash to the root signed by {label}: "
                                       f"history before leaf {size} was rewritten")
        previous = size


def audit_log_verify(*, anchors=()) -> ChainVerification:
    """Check the audit trail against the signed tree heads (see the module docstring). ``anchors``:
    extra signed tree head documents (e.g. kept by an auditor, or from a certificate's ``transparency``)."""
    result = ChainVerification(valid=True, checked=0)
    try:
        keys = certificate_keys.published_keys()
    except KeySetError as exc:
        keys = {}
        result.problems.append(f"the published key set is unusable: {exc}")
    events: dict[int, str] = {}
    legacy_prev = GENESIS_HASH  # events before migration 0008 also keep their chain links
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        result.checked += 1
        expected = audit_event_expected_hash(event)
        if expected != event.hash:
            result.problems.append(f"event {event.id}: event content does not match its hash")
            result.first_bad_id = result.first_bad_id or event.id
        if event.prev_hash:
            if event.prev_hash != legacy_prev:
                result.problems.append(f"event {event.id}: prev_hash does not match the previous chained event")
                result.first_bad_id = result.first_bad_id or event.id
            legacy_prev = event.hash
        events[event.id] = audit_leaf_hash(audit_event_leaf(event)).hex()
    heads = list(SignedTreeHead.objects.order_by("tree_size"))
    leaves = {i: (e, h) for i, e, h in AuditLeaf.objects.values_list("leaf_index", "event_id", "leaf_hash")}
    size = heads[-1].tree_size if heads else 0
    result.tree_size, result.root_hash = size, heads[-1].root_hash if heads else None
    sizes = _signed_sizes(heads, anchors, keys, result)
    _check_leaves(leaves, events, size, result)
    _check_roots(leaves, sizes, result)
    sealed = {e for e, _ in leaves.values()}
    result.unsealed = sum(1 for e in events if e not in sealed)
    bad_ids = [r["event_id"] for r in result.missing_events + result.changed_events]
    if bad_ids and result.first_bad_id is None:
        result.first_bad_id = min(bad_ids)
    result.valid = not result.problems
    result.reason = result.problems[0] if result.problems else ""
    return result
