"""Merkle tree hashing, inclusion and consistency proofs of a Certificate-Transparency-style log.

Definitions (RFC 6962 §2.1, unchanged in RFC 9162 §2.1.1), hash = SHA-256, hashes are 32 raw bytes:

- ``MTH({}) = SHA-256()`` (the empty string);
- leaf hash ``MTH({d0}) = SHA-256(0x00 || d0)``;
- for ``n > 1``, with ``k`` the largest power of two ``< n``:
  ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.

Proofs are generated as in RFC 6962 §2.1.1 (``PATH``, audit path) and §2.1.2 (``PROOF``/``SUBPROOF``,
consistency proof) and verified with the algorithms of RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
(consistency), which never need the leaves. A "frontier" (the roots of the perfect subtrees of the
binary decomposition of the tree size, largest first; ``popcount(size)`` hashes) lets a log append
leaves in O(1) amortised and compute its root without re-reading old leaves.

No Django here: the standalone certificate verifier imports this module.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "ProofError",
    "consistency_proof",
    "frontier_append",
    "frontier_root",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not verify, or arguments no proof can exist for (the reason is the message)."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)`` (RFC 6962 §2.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)`` (RFC 6962 §2.1)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    if hi - lo == 1:
        return hashes[lo]
    k = _split(hi - lo)
    return node_hash(_mth(hashes, lo, lo + k), _mth(hashes, lo + k, hi))


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH`` of a list of leaf hashes (already ``leaf_hash``-ed); ``EMPTY_ROOT`` for none. O(n)."""
    return _mth(leaf_hashes, 0, len(leaf_hashes)) if leaf_hashes else EMPTY_ROOT


def frontier_append(frontier: list[bytes], size: int, leaf: bytes) -> list[bytes]:
    """Append one leaf hash to the frontier of a tree of ``size`` leaves; returns the frontier of
    ``size + 1`` (a new list). ``len(frontier)`` must equal ``popcount(size)``."""
    if len(frontier) != bin(size).count("1"):
        raise ValueError(f"a frontier of a {size}-leaf tree has {bin(size).count('1')} hashes, got {len(frontier)}")
    out = list(frontier)
    node = leaf
    while size & 1:  # merge the equal-sized perfect subtrees on the right edge
        node = node_hash(out.pop(), node)
        size >>= 1
    out.append(node)
    return out


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The tree's ``MTH`` from its frontier (right-to-left fold of the perfect-subtree roots)."""
    if not frontier:
        return EMPTY_ROOT
    node = frontier[-1]
    for left in reversed(frontier[:-1]):
        node = node_hash(left, node)
    return node


def _path(m: int, hashes: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < k:
        return _path(m, hashes, lo, lo + k) + [_mth(hashes, lo + k, hi)]
    return _path(m - k, hashes, lo + k, hi) + [_mth(hashes, lo, lo + k)]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path ``PATH(index, D[n])`` of RFC 6962 §2.1.1 for the tree of ``leaf_hashes``.
    Raises ``ValueError`` when ``index`` is not in ``[0, n)``."""
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"leaf index {index} is not in a tree of {len(leaf_hashes)} leaves")
    return _path(index, leaf_hashes, 0, len(leaf_hashes))


def _subproof(m: int, hashes: Sequence[bytes], lo: int, hi: int, complete: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if complete else [_mth(hashes, lo, hi)]
    k = _split(n)
    if m <= k:
        return _subproof(m, hashes, lo, lo + k, complete) + [_mth(hashes, lo + k, hi)]
    return _subproof(m - k, hashes, lo + k, hi, False) + [_mth(hashes, lo, lo + k)]


def consistency_proof(leaf_hashes: Sequence[bytes], first: int) -> list[bytes]:
    """``PROOF(first, D[n])`` of RFC 6962 §2.1.2: proves the tree of the first ``first`` leaves is a
    prefix of the tree of all ``n = len(leaf_hashes)``. Empty for ``first`` 0 or ``n``. Raises
    ``ValueError`` when ``first`` is not in ``[0, n]``."""
    n = len(leaf_hashes)
    if not 0 <= first <= n:
        raise ValueError(f"tree size {first} is not in [0, {n}]")
    if first in (0, n):
        return []
    return _subproof(first, leaf_hashes, 0, n, True)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise ProofError(f"{what} is not a 32-byte SHA-256 hash")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by an audit path (RFC 9162 §2.1.3.2 steps 1-5). Raises :class:`ProofError`
    when the index is outside the tree or the path has the wrong length."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of {size} leaves")
    _check_hash(leaf, "the leaf hash")
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in proof:
        _check_hash(p, "an inclusion proof element")
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` leaves whose root is ``root``
    (RFC 9162 §2.1.3.2). Returns ``None``; raises :class:`ProofError` with the reason otherwise."""
    _check_hash(root, "the root hash")
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError("the inclusion proof does not lead to the tree head's root hash")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree ``(first, first_root)`` is a prefix of ``(second, second_root)``
    (RFC 9162 §2.1.4.2; ``first == 0`` is consistent with anything given an empty proof).
    Returns ``None``; raises :class:`ProofError` with the reason otherwise."""
    if not 0 <= first <= second:
        raise ProofError(f"tree size {first} cannot be a prefix of tree size {second}")
    for p in proof:
        _check_hash(p, "a consistency proof element")
    if first == second:
        if proof:
            raise ProofError("the consistency proof between equal tree sizes must be empty")
        if first_root != second_root:
            raise ProofError("two tree heads of the same size have different root hashes")
        return
    if first == 0:
        if proof:
            raise ProofError("the consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the first tree is a subtree of the second
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    if fr != first_root:
        raise ProofError("the consistency proof does not lead to the first tree head's root hash")
    if sr != second_root:
        raise ProofError("the consistency proof does not lead to the second tree head's root hash")
