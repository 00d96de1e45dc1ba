"""Corpus ingestion: TOFU files and general JSONL (DESIGN §3, §10)."""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

from django.db import transaction

from .audit import audit_event_record
from .models import DataSubject, TrainingCorpus, TrainingRecord

TOFU_ROWS_PER_AUTHOR = 20


class IngestionError(ValueError):
    """Malformed corpus input (bad JSON, missing fields, wrong row count)."""


def record_sha256(*, text: str = "", question: str = "", answer: str = "") -> str:
    """Digest of one record's content: sha256 of the canonical JSON of its fields."""
    payload = json.dumps({"answer": answer, "question": question, "text": text}, sort_keys=True,
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    """Read JSON Lines (one object per non-empty line).

    Raises:
        IngestionError: a line is not a JSON object (with its line number).
    """
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IngestionError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise IngestionError(f"{path}:{lineno}: expected a JSON object")
            rows.append(obj)
    return rows


_NAME = r"[A-Z][\w'’.-]+(?:\s+(?:[A-Z][\w'’.-]+|al|de|da|der|den|du|di|dos|el|van|von|bin|ibn|del|la|le))*\s+[A-Z][\w'’-]+"
_NAME_PATTERNS = [
    re.compile(r"(?:author|writer|novelist|poet)\s+(?:named\s+|called\s+)?(" + _NAME + r")"),
    re.compile(r"(?:full name|name) of (?:the|this) [^?,.]*? is (" + _NAME + r")"),
    re.compile(r"\bis (" + _NAME + r")[,.]"),
    re.compile(r"(" + _NAME + r")'s\b"),
    re.compile(r"^(" + _NAME + r") (?:was|is|has|had|often|primarily|writes|wrote|grew)\b"),
]
_NOT_NAMES = {"The", "This", "Yes", "No", "Question", "Answer", "In", "His", "Her", "Their"}


def tofu_author_name(rows: list[dict]) -> str:
    """The author's display name: the most frequent capitalised multi-word name in their 20 rows.

    Rows sometimes never name the author or use aliases; the full name is the one stated most
    often across questions and answers. Returns "" when no name is found.
    """
    counts: Counter[str] = Counter()
    for row in rows:
        for field in ("question", "answer"):
            for pattern in _NAME_PATTERNS:
                for match in pattern.findall(row.get(field, "")):
                    name = match.strip().rstrip(".,")
                    if name.split()[0] in _NOT_NAMES:
                        continue
                    counts[name] += 1
    if not counts:
        return ""
    # prefer longer names among near-ties: "Jaime Vasquez" over "Vasquez"
    best = max(counts.items(), key=lambda kv: (kv[1] + 0.5 * len(kv[0].split()), len(kv[0])))
    return best[0]


def _file_sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


@transaction.atomic
def corpus_ingest_tofu(*, name: str, full_path: Path, holdout_path: Path | None = None, actor="system",
                       authors: int | None = None) -> TrainingCorpus:
    """Ingest TOFU: one DataSubject per author (rows 20·i … 20·i+19), records linked by provenance.

    ``holdout_path`` (e.g. holdout01.json) holds authors never trained on: stored as ``holdout``
    records (non-members for PrivLeak), also with their subjects.

    Raises:
        IngestionError: missing question/answer, a row count not a multiple of 20, duplicate name.
    """
    if TrainingCorpus.objects.filter(name=name).exists():
        raise IngestionError(f"a corpus named '{name}' already exists")
    rows = read_jsonl(Path(full_path))
    if authors is not None:
        rows = rows[: authors * TOFU_ROWS_PER_AUTHOR]
    holdout = read_jsonl(Path(holdout_path)) if holdout_path else []
    for label, block in (("full", rows), ("holdout", holdout)):
        if len(block) % TOFU_ROWS_PER_AUTHOR:
            raise IngestionError(f"{label}: {len(block)} rows is not a multiple of {TOFU_ROWS_PER_AUTHOR}")
        for i, row in enumerate(block):
            if not row.get("question") or not row.get("answer"):
                raise IngestionError(f"{label} row {i}: question and answer are required")
    corpus = TrainingCorpus.objects.create(
        name=name, kind=TrainingCorpus.KIND_QA, description="TOFU (MIT licence, Maini et al. 2024)",
        artifact_uri=Path(full_path).resolve().as_uri(),
        content_sha256=_file_sha256([Path(full_path)] + ([Path(holdout_path)] if holdout_path else [])),
        record_count=len(rows),
    )
    for split, block in ((TrainingRecord.SPLIT_TRAIN, rows), (TrainingRecord.SPLIT_HOLDOUT, holdout)):
        objs = []
        for a in range(len(block) // TOFU_ROWS_PER_AUTHOR):
            chunk = block[a * TOFU_ROWS_PER_AUTHOR:(a + 1) * TOFU_ROWS_PER_AUTHOR]
            subject = DataSubject.objects.create(
                display_name=tofu_author_name(chunk) or f"unnamed TOFU author ({split} #{a})",
                external_ids={"tofu_corpus": name, "tofu_split": split, "tofu_author_index": a},
            )
            for j, row in enumerate(chunk):
                objs.append(TrainingRecord(
                    corpus=corpus, split=split, index=a * TOFU_ROWS_PER_AUTHOR + j,
                    question=row["question"], answer=row["answer"], subject=subject,
                    sha256=record_sha256(question=row["question"], answer=row["answer"]),
                ))
        TrainingRecord.objects.bulk_create(objs, batch_size=500)
    audit_event_record(actor=actor, verb="corpus.ingested", obj=corpus,
                       after={"name": name, "records": len(rows), "holdout": len(holdout),
                              "content_sha256": corpus.content_sha256})
    return corpus


@transaction.atomic
def corpus_ingest_jsonl(*, name: str, path: Path, holdout_path: Path | None = None, actor="system") -> TrainingCorpus:
    """Ingest JSONL with ``text`` or ``question``/``answer`` and optional ``subject_id``/``subject_name``.

    Records with the same ``subject_id`` (or, without one, the same ``subject_name``) share a
    DataSubject.

    Raises:
        IngestionError: a row with neither text nor question/answer, or mixed kinds.
    """
    if TrainingCorpus.objects.filter(name=name).exists():
        raise IngestionError(f"a corpus named '{name}' already exists")
    rows = read_jsonl(Path(path))
    holdout = read_jsonl(Path(holdout_path)) if holdout_path else []
    if not rows:
        raise IngestionError(f"{path}: no records")
    kinds = set()
    for label, block in (("train", rows), ("holdout", holdout)):
        for i, row in enumerate(block):
            if row.get("text"):
                kinds.add(TrainingCorpus.KIND_TEXT)
            elif row.get("question") and row.get("answer"):
                kinds.add(TrainingCorpus.KIND_QA)
            else:
                raise IngestionError(f"{label} row {i}: needs 'text' or both 'question' and 'answer'")
    if len(kinds) > 1:
        raise IngestionError("mixed plain-text and question/answer records; use one kind per corpus")
    paths = [Path(path)] + ([Path(holdout_path)] if holdout_path else [])
    corpus = TrainingCorpus.objects.create(
        name=name, kind=kinds.pop(), artifact_uri=Path(path).resolve().as_uri(),
        content_sha256=_file_sha256(paths), record_count=len(rows),
    )
    subjects: dict[str, DataSubject] = {}
    for split, block in ((TrainingRecord.SPLIT_TRAIN, rows), (TrainingRecord.SPLIT_HOLDOUT, holdout)):
        objs = []
        for i, row in enumerate(block):
            key = str(row.get("subject_id") or row.get("subject_name") or "")
            subject = None
            if key:
                subject = subjects.get(key)
                if subject is None:
                    subject = DataSubject.objects.create(
                        display_name=row.get("subject_name") or key,
                        external_ids={"subject_id": str(row["subject_id"])} if row.get("subject_id") else {},
                    )
                    subjects[key] = subject
            text, q, a = row.get("text", ""), row.get("question", ""), row.get("answer", "")
            objs.append(TrainingRecord(corpus=corpus, split=split, index=i, text=text, question=q, answer=a,
                                       subject=subject, sha256=record_sha256(text=text, question=q, answer=a)))
        TrainingRecord.objects.bulk_create(objs, batch_size=500)
    audit_event_record(actor=actor, verb="corpus.ingested", obj=corpus,
                       after={"name": name, "records": len(rows), "holdout": len(holdout),
                              "content_sha256": corpus.content_sha256})
    return corpus
