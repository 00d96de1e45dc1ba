"""Training records and the prompt template shared by the engine and ``evaluation``.

A record is either plain text (``text``) or a question/answer pair (``question``, ``answer``).
QA records are formatted with :data:`QA_TEMPLATE` (DESIGN §7: ``Question: {q}\\nAnswer: {a}``).
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

QA_TEMPLATE = "Question: {question}\nAnswer: {answer}"
QA_PROMPT_TEMPLATE = "Question: {question}\nAnswer: "


@dataclass(frozen=True)
class Example:
    """One training record.

    Exactly one of ``text`` or (``question`` and ``answer``) must be set.
    ``record_id`` is opaque to the engine (the Django side passes the TrainingRecord sha256);
    it is only used to detect forget/retain overlap. ``subject`` is the privacy-unit key of
    subject-level DP-SGD (the Django side passes the DataSubject's public id; never a name):
    records with the same subject form one unit, a record without one is its own unit.

    Raises:
        ValueError: if neither / both kinds of content are given.
    """

    text: str | None = None
    question: str | None = None
    answer: str | None = None
    record_id: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        has_qa = self.question is not None or self.answer is not None
        if has_qa and (self.question is None or self.answer is None):
            raise ValueError("a QA Example needs both question and answer")
        if has_qa == (self.text is not None):
            raise ValueError("an Example needs either text or question+answer (not both)")

    @property
    def is_qa(self) -> bool:
        """True for question/answer records."""
        return self.question is not None

    @classmethod
    def from_dict(cls, d: dict) -> Example:
        """Build from a dict with keys ``text`` or ``question``/``answer`` (+ optional
        ``record_id``, ``subject``)."""
        subject = d.get("subject")
        return cls(text=d.get("text"), question=d.get("question"), answer=d.get("answer"),
                   record_id=d.get("record_id"), subject=None if subject is None else str(subject))

    def to_dict(self) -> dict:
        return {k: v for k, v in (("text", self.text), ("question", self.question),
                                  ("answer", self.answer), ("record_id", self.record_id),
                                  ("subject", self.subject))
                if v is not None}


def format_prompt(ex: Example) -> str:
    """Prompt part of a record: ``"Question: {q}\\nAnswer: "`` for QA, ``""`` for plain text."""
    if ex.is_qa:
        return QA_PROMPT_TEMPLATE.format(question=ex.question)
    return ""


def format_example(ex: Example) -> str:
    """Full training text: prompt + answer (QA, :data:`QA_TEMPLATE`) or the plain text."""
    if ex.is_qa:
        return QA_TEMPLATE.format(question=ex.question, answer=ex.answer)
    return ex.text  # type: ignore[return-value]


def load_jsonl(path: str | Path, *, start: int = 0, stop: int | None = None,
               id_prefix: str | None = None) -> list[Example]:
    """Read a JSON Lines file of ``{"question","answer"}`` or ``{"text"}`` rows into Examples.

    ``start``/``stop`` select rows (0-based, stop exclusive). With ``id_prefix`` the record_id
    becomes ``f"{id_prefix}{row_index}"`` unless the row has its own ``record_id``.
    """
    out: list[Example] = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < start or not line.strip():
                continue
            if stop is not None and i >= stop:
                break
            row = json.loads(line)
            if id_prefix is not None and "record_id" not in row:
                row["record_id"] = f"{id_prefix}{i}"
            out.append(Example.from_dict(row))
    return out


_WHITESPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """The form two records are compared in: Unicode NFKC (compatibility forms folded, e.g. the
    ligature "ﬁ" → "fi", full-width digits → ASCII), case-folded, every run of whitespace
    (spaces, tabs, newlines, no-break spaces) collapsed to one space, ends stripped. So a copy of a
    record re-typed with other spacing or capitalisation counts as the same text.
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_digest(ex: Example) -> str:
    """sha256 (hex) of :func:`normalise_text` of the record's :func:`format_example` text (UTF-8).
    A classifier record (:class:`~unlearning_engine.families.classifier.data.LabeledExample`) has
    no text: its content digest (features and label) stands in."""
    if hasattr(ex, "content_digest"):
        return ex.content_digest()
    return hashlib.sha256(normalise_text(format_example(ex)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Overlap:
    """One item of a split that is also in another: ``kind`` = ``"record_id"`` or ``"text"``;
    ``index`` is its position in the second split; ``key`` the shared record id or text digest."""

    kind: str
    index: int
    key: str


def keyed_overlaps(a: Iterable[tuple[str | None, str]], b: Iterable[tuple[str | None, str]]) -> list[Overlap]:
    """Items of ``b`` also in ``a``, each item given as ``(record_id or None, text digest)``: by
    record id (when both have one) or by text digest (identical normalised text under another id).
    One :class:`Overlap` per offending item of ``b``; the record-id match is reported when both hold.
    The one overlap rule of the project: :func:`split_overlaps` (the engine's forget/retain check and
    the evaluation report) and the evaluation manifest (``evaluation.manifest``) call it."""
    ids, texts = set(), set()
    for record_id, digest in a:
        if record_id is not None:
            ids.add(record_id)
        texts.add(digest)
    out = []
    for i, (record_id, digest) in enumerate(b):
        if record_id is not None and record_id in ids:
            out.append(Overlap("record_id", i, record_id))
        elif digest in texts:
            out.append(Overlap("text", i, digest))
    return out


def split_overlaps(a: Iterable[Example], b: Iterable[Example]) -> list[Overlap]:
    """:func:`keyed_overlaps` of two lists of Examples (``record_id``, :func:`text_digest`)."""
    return keyed_overlaps(((e.record_id, text_digest(e)) for e in a), ((e.record_id, text_digest(e)) for e in b))
