"""Tokenizer provenance: what a model's tokenizer was built from (issue 12 item 3, DESIGN §6).

A tokenizer is data-dependent: a BPE vocabulary trained on the private corpus contains entries that
exist only because of particular records (a forgotten author's name, say), and it ships unchanged in
the DP base, every unlearned model and the exact-retrain reference. DP-SGD protects the weights only,
so the DP claim (and "exact retrain") holds only when the tokenizer is independent of the private
data: a pre-trained model's own tokenizer or one trained on a public corpus.

The provenance record (saved as ``tokenizer_provenance.json`` beside ``tokenizer.json`` in every
artifact, and put into the registered model's privacy ledger under ``tokenizer_provenance``)::

    {"kind": "pretrained" | "public_corpus" | "private_corpus" | "unknown",
     "name": str,                       # e.g. "wikitext2-bpe-2048"
     "sha256": str,                     # sha256 of the artifact's tokenizer.json bytes
     "trained_on": [{"name": str, "sha256": str, ...}],  # source file / corpus digests
     ...}                               # optional: "reason" (unknown), "vocab_size", "recipe"

No Django, no torch: plain files and dicts.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import UnlearningInputError

PROVENANCE_FILE = "tokenizer_provenance.json"
TOKENIZER_FILE = "tokenizer.json"
KINDS = ("pretrained", "public_corpus", "private_corpus", "unknown")
#: Kinds a DP claim may rest on: the tokenizer does not depend on the private corpus.
PUBLIC_KINDS = frozenset({"pretrained", "public_corpus"})


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tokenizer_sha256(path: str | Path) -> str:
    """sha256 of ``tokenizer.json`` (``path``: the artifact directory or the file itself).

    ``save_pretrained`` rewrites the file byte-identically on a load/save round trip (measured), so the
    digest identifies the tokenizer across the lineage base → target → DP base → unlearned models.

    Raises:
        FileNotFoundError: no ``tokenizer.json``.
    """
    p = Path(path)
    return file_sha256(p / TOKENIZER_FILE if p.is_dir() else p)


def texts_digest(texts) -> str:
    """sha256 over the sha256 of each text (UTF-8), in order: identifies a private corpus
    without keeping any of its text."""
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    return h.hexdigest()


def make_provenance(kind: str, name: str, sha256: str, trained_on: list[dict] | None = None,
                    **extra) -> dict:
    """A validated provenance record.

    Raises:
        ValueError: unknown ``kind``, empty ``name``, ``sha256`` not 64 hex digits, or a public kind
            without any ``trained_on`` source digest.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer provenance kind {kind!r}; choose one of {list(KINDS)}")
    if not name:
        raise ValueError("a tokenizer provenance needs a name")
    if not _is_sha256(sha256):
        raise ValueError("tokenizer provenance sha256 must be 64 hex digits")
    trained_on = [dict(s) for s in (trained_on or [])]
    if kind in PUBLIC_KINDS and not trained_on:
        raise ValueError(f"a {kind!r} tokenizer provenance must name its source digests (trained_on)")
    return {"kind": kind, "name": name, "sha256": sha256, "trained_on": trained_on, **extra}


def unknown_provenance(reason: str, sha256: str | None = None) -> dict:
    """The record of a tokenizer whose origin cannot be established (``reason`` says why)."""
    return {"kind": "unknown", "name": "unknown", "sha256": sha256 or "", "trained_on": [],
            "reason": reason}


def _is_sha256(s) -> bool:
    return isinstance(s, str) and len(s) == 64 and all(c in "0123456789abcdef" for c in s)


def write_provenance(out_dir: str | Path, provenance: dict | None) -> dict:
    """Write ``tokenizer_provenance.json`` into the artifact ``out_dir`` (whose ``tokenizer.json`` is
    already written) and return what was written.

    The digest is recomputed from the file on disk: when it differs from ``provenance["sha256"]``
    (the tokenizer was changed after its provenance was recorded) or ``provenance`` is ``None``,
    the record written is kind ``"unknown"`` with the reason — never a stale public claim.
    """
    out = Path(out_dir)
    actual = tokenizer_sha256(out)
    if provenance is None:
        record = unknown_provenance("no provenance was recorded for this tokenizer", actual)
    elif provenance.get("sha256") != actual:
        record = unknown_provenance(
            f"tokenizer.json changed since its provenance ({provenance.get('kind')!r}, "
            f"{provenance.get('name')!r}) was recorded: sha256 {str(provenance.get('sha256'))[:12]} "
            f"-> {actual[:12]}", actual)
    else:
        record = dict(provenance)
    (out / PROVENANCE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n",
                                       encoding="utf-8")
    return record


def read_provenance(artifact_dir: str | Path) -> dict:
    """The provenance of the tokenizer in ``artifact_dir``, checked against its ``tokenizer.json``.

    Returns kind ``"unknown"`` (with ``reason``) when the provenance file is missing, is not valid
    JSON, has an unknown kind or a malformed record, or names another sha256 than the
    ``tokenizer.json`` beside it. Never raises for a bad record: the caller decides what an unknown
    tokenizer may be used for (:func:`require_public_tokenizer`).

    Raises:
        FileNotFoundError: ``artifact_dir`` has no ``tokenizer.json``.
    """
    p = Path(artifact_dir)
    actual = tokenizer_sha256(p)
    f = p / PROVENANCE_FILE
    if not f.is_file():
        return unknown_provenance(f"no {PROVENANCE_FILE} beside the tokenizer", actual)
    try:
        rec = json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return unknown_provenance(f"{PROVENANCE_FILE} is not valid JSON ({exc})", actual)
    if not isinstance(rec, dict) or rec.get("kind") not in KINDS:
        return unknown_provenance(f"{PROVENANCE_FILE} has no valid kind", actual)
    if rec.get("sha256") != actual:
        return unknown_provenance(
            f"{PROVENANCE_FILE} describes tokenizer sha256 {str(rec.get('sha256'))[:12]}, "
            f"but tokenizer.json has {actual[:12]}", actual)
    try:
        return make_provenance(**rec)
    except (TypeError, ValueError) as exc:
        return unknown_provenance(f"{PROVENANCE_FILE} is malformed ({exc})", actual)


def provenance_problem(provenance: dict | None) -> str | None:
    """Why a DP claim cannot rest on this tokenizer, or ``None`` when its kind is public."""
    if not provenance:
        return "the tokenizer has no recorded provenance (unknown)"
    kind = provenance.get("kind")
    if kind in PUBLIC_KINDS and provenance.get("trained_on"):
        return None
    if kind == "private_corpus":
        return ("the tokenizer was trained on the private corpus: its vocabulary depends on the "
                "training records (the forget set included), outside the DP mechanism")
    reason = provenance.get("reason")
    return f"the tokenizer's provenance is {kind or 'unknown'}" + (f": {reason}" if reason else "")


def require_public_tokenizer(provenance: dict | None) -> dict:
    """Return ``provenance`` when a DP claim may rest on it (kind pretrained / public_corpus).

    Raises:
        UnlearningInputError: private-corpus or unknown provenance (before any training).
    """
    problem = provenance_problem(provenance)
    if problem:
        raise UnlearningInputError(f"no DP claim with this tokenizer: {problem}; use a public "
                                   f"tokenizer (unlearning_engine.public_tokenizer)")
    return provenance


def describe(provenance: dict, vocab_size: int | None = None, limit: int = 200) -> str:
    """One-line human description (``TargetModel.tokenizer``, at most ``limit`` characters), e.g.
    ``"byte-level BPE, vocabulary 2048; public_corpus 'wikitext2-bpe-2048', tokenizer.json sha256
    61ce3c16c27a; trained on wikitext2/valid.txt f0737ed3, …"``."""
    sources = ", ".join(f"{s.get('name')} {str(s.get('sha256', ''))[:8]}"
                        for s in provenance.get("trained_on", []))
    vocab = f"byte-level BPE, vocabulary {vocab_size}; " if vocab_size else ""
    text = (f"{vocab}{provenance.get('kind')} '{provenance.get('name')}', tokenizer.json sha256 "
            f"{str(provenance.get('sha256', ''))[:12]}" + (f"; trained on {sources}" if sources else ""))
    return text if len(text) <= limit else text[: limit - 1] + "…"
