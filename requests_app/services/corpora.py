"""Training corpora and data subjects onboarded by an ML operator (issue 14; DESIGN §1, §3).

A corpus is JSON Lines, one record per line::

    {"text": "..."}                                    plain text, or
    {"question": "...", "answer": "..."}               question/answer (one kind per corpus)
    optional: "subject_id", "subject_name", "aliases": [...], "email", "split": "train"|"holdout"

The source is an uploaded file (streamed into the artifact store first), an ``s3://bucket/key``
object (boto3; ``AWS_ENDPOINT_URL`` for S3-compatible stores) or, in embedded mode only (local
artifact store), a local path / ``file://`` URI. The file is read line by line (never whole):
:func:`corpus_validate` gives the validation report; :func:`corpus_ingest_request` queues a
``corpus_ingest`` preparation job whose worker (:func:`corpus_ingest_apply`) writes the corpus,
its subjects and records in ONE transaction, so a failure leaves nothing half-registered.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.db import transaction

from ..audit import audit_event_record
from ..models import DataSubject, PreparationJob, TrainingCorpus, TrainingRecord
from .common import ServiceError

#: bad lines listed by line number in a report (the total is always counted)
REPORT_MAX_LINES = 50
CORPUS_FILE = "corpus.jsonl"
BATCH = 500


def email_sha256(email: str) -> str:
    """sha256 hex of the e-mail, trimmed and lower-cased (lookup key; the address itself is never stored)."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


# --- sources ---------------------------------------------------------------------------------------

def _embedded() -> bool:
    return urlparse(settings.ARTIFACT_STORE_URL).scheme == "file"


def _s3_client():
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5,
                                      read_timeout=60))


def _local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(parsed.path) if parsed.scheme == "file" else Path(uri)


def corpus_source_check(uri: str) -> str:
    """Check that ``uri`` can be read; return it normalised (local paths become ``file://`` URIs).

    Raises:
        ServiceError: unsupported scheme, a local path outside embedded mode, a missing file, or an
            S3 object that cannot be reached (with the store's reason).
    """
    uri = (uri or "").strip()
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        from botocore.exceptions import BotoCoreError, ClientError

        parsed = urlparse(uri)
        try:
            _s3_client().head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise ServiceError(f"corpus source {uri} cannot be read: {code or exc}") from exc
        except BotoCoreError as exc:
            raise ServiceError(f"corpus source {uri} cannot be reached: {exc}") from exc
        return uri
    if scheme in ("", "file"):
        if not _embedded():
            raise ServiceError("local corpus paths are accepted in embedded mode only; use an s3:// URI")
        try:
            path = _local_path(uri)
            ok = path.is_absolute() and path.is_file()
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise ServiceError(f"corpus source {uri} is not an existing absolute file path")
        return path.resolve().as_uri()
    raise ServiceError(f"unsupported corpus source scheme '{scheme}' (use s3:// or, embedded, a local path)")


def corpus_source_lines(uri: str) -> Iterator[bytes]:
    """The raw lines (bytes, with their newline) of the source, streamed.

    Raises:
        ServiceError: the source cannot be opened or read.
    """
    if urlparse(uri).scheme == "s3":
        from botocore.exceptions import BotoCoreError, ClientError

        parsed = urlparse(uri)
        try:
            body = _s3_client().get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
            yield from body.iter_lines(keepends=True)
        except (BotoCoreError, ClientError) as exc:
            raise ServiceError(f"corpus source {uri} cannot be read: {exc}") from exc
        return
    try:
        with open(_local_path(uri), "rb") as fh:
            yield from fh
    except OSError as exc:
        raise ServiceError(f"corpus source {uri} cannot be read: {exc}") from exc


def corpus_upload_store(fileobj, *, chunk: int = 1 << 20) -> str:
    """Stream an uploaded file into the artifact store (``corpora/uploads/<uuid>/corpus.jsonl``).

    Returns the URI of the stored file (``file://…`` or ``s3://…``), readable by
    :func:`corpus_source_lines` on any worker.
    """
    from ..artifacts import ArtifactStoreError, artifact_store

    key = f"corpora/uploads/{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(dir=settings.VAR_DIR) as tmp:
        with open(Path(tmp) / CORPUS_FILE, "wb") as out:
            for block in iter(lambda: fileobj.read(chunk), b""):
                out.write(block)
        try:
            dir_uri = artifact_store().put_dir(Path(tmp), key)
        except ArtifactStoreError as exc:
            raise ServiceError(f"the upload could not be stored: {exc}") from exc
    return f"{dir_uri.rstrip('/')}/{CORPUS_FILE}"


# --- parsing and validation ------------------------------------------------------------------------

def _text_field(obj: dict, key: str) -> str:
    value = obj.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise ValueError(f"'{key}' contains a NUL character")
    return value


#: deepest JSON nesting a corpus line may have (the API's own parser allows the same, JSON_MAX_DEPTH)
LINE_MAX_DEPTH = 32


def _line_json(line: str):
    """Parse one corpus line with the strict parser of signed documents (duplicate keys, NaN/Infinity,
    over-long integers, nesting deeper than :data:`LINE_MAX_DEPTH` refused), any finite number form
    allowed. Raises ValueError (``StrictJSONError``) with the reason — never a 500."""
    from evaluation.strict_json import strict_loads

    return strict_loads(line, max_depth=LINE_MAX_DEPTH, canonical_numbers=False)


def corpus_parse_line(raw: bytes) -> dict | None:
    """One JSONL line → normalised record dict, or ``None`` for a blank line.

    Returns ``{"kind", "text", "question", "answer", "split", "subject_id", "subject_name",
    "aliases", "email"}``.

    Raises:
        ValueError: not UTF-8, not a JSON object, no text (empty or whitespace only), an answer
            without question (or the reverse), a bad split, aliases that are not a list of strings.
    """
    try:
        line = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ValueError("not UTF-8") from exc
    if not line:
        return None
    obj = _line_json(line)
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    common = _common_fields(obj)
    if "features" in obj or "label" in obj:
        return {**_feature_fields(obj), **common}
    text, q, a = _text_field(obj, "text"), _text_field(obj, "question"), _text_field(obj, "answer")
    if text.strip() and (q or a):
        raise ValueError("a record has either 'text' or 'question'/'answer', not both")
    if text.strip():
        kind = TrainingCorpus.KIND_TEXT
    elif q.strip() and a.strip():
        kind = TrainingCorpus.KIND_QA
    elif q.strip() or a.strip():
        raise ValueError("question and answer must both be non-empty")
    else:
        raise ValueError("record without text: needs a non-empty 'text' or 'question' and 'answer'")
    return {"kind": kind, "text": text, "question": q, "answer": a, "features": None, "label": None, **common}


def _common_fields(obj: dict) -> dict:
    split = obj.get("split") or TrainingRecord.SPLIT_TRAIN
    if split not in (TrainingRecord.SPLIT_TRAIN, TrainingRecord.SPLIT_HOLDOUT):
        raise ValueError(f"split must be 'train' or 'holdout', not {split!r}")
    aliases = obj.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(x, str) for x in aliases):
        raise ValueError("'aliases' must be a list of strings")
    sid = obj.get("subject_id")
    if sid is not None and not isinstance(sid, (str, int)):
        raise ValueError("'subject_id' must be a string or an integer")
    return {"split": split, "subject_id": str(sid).strip() if sid is not None and str(sid).strip() else "",
            "subject_name": _text_field(obj, "subject_name").strip(), "aliases": [x.strip() for x in aliases if x.strip()],
            "email": _text_field(obj, "email").strip()}


def _feature_fields(obj: dict) -> dict:
    """A classifier record (issue 19): ``features`` (a non-empty list of finite numbers: an image's
    flattened pixels or a tabular row), ``label`` (an integer class >= 0), optional ``kind``
    (``"image"`` or ``"tabular"``, default tabular). Raises ValueError naming the problem."""
    import math

    from unlearning_engine.families.classifier.data import record_content_sha256

    feats, label = obj.get("features"), obj.get("label")
    if not isinstance(feats, list) or not feats:
        raise ValueError("'features' must be a non-empty list of numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in feats):
        raise ValueError("'features' must hold finite numbers only")
    if isinstance(label, bool) or not isinstance(label, int) or label < 0:
        raise ValueError(f"'label' must be an integer class >= 0, not {label!r}")
    kind = obj.get("kind") or TrainingCorpus.KIND_TABULAR
    if kind not in (TrainingCorpus.KIND_IMAGE, TrainingCorpus.KIND_TABULAR):
        raise ValueError(f"a feature record's kind must be 'image' or 'tabular', not {kind!r}")
    feats = [float(v) for v in feats]
    return {"kind": kind, "text": "", "question": "", "answer": "", "features": feats, "label": label,
            "sha256": record_content_sha256(feats, label)}


def _subject_key(rec: dict) -> str:
    if rec["subject_id"]:
        return "id:" + rec["subject_id"]
    if rec["email"]:
        return "email:" + email_sha256(rec["email"])
    if rec["subject_name"]:
        return "name:" + rec["subject_name"]
    return ""


class _Validator:
    """Streaming validation state: counts, duplicate digests, subject names per id."""

    def __init__(self):
        self.report = {"lines": 0, "records": 0, "train": 0, "holdout": 0, "kind": None, "subjects": 0,
                       "without_subject": 0, "duplicate_texts": 0, "duplicates": [], "bad_lines": [],
                       "errors": 0}
        self.seen: dict[str, int] = {}
        self.names: dict[str, tuple[str, int]] = {}
        self.subjects: set[str] = set()

    def error(self, lineno: int, message: str) -> None:
        self.report["errors"] += 1
        if len(self.report["bad_lines"]) < REPORT_MAX_LINES:
            self.report["bad_lines"].append({"line": lineno, "error": message})

    def add(self, lineno: int, rec: dict) -> bool:
        r = self.report
        if r["kind"] is None:
            r["kind"] = rec["kind"]
        elif r["kind"] != rec["kind"]:
            self.error(lineno, f"a '{rec['kind']}' record in a '{r['kind']}' corpus (one kind per corpus)")
            return False
        if rec["subject_id"] and rec["subject_name"]:
            first = self.names.setdefault(rec["subject_id"], (rec["subject_name"], lineno))
            if first[0] != rec["subject_name"]:
                self.error(lineno, f"subject_id '{rec['subject_id']}' is named '{rec['subject_name']}' here "
                                   f"but '{first[0]}' on line {first[1]}")
                return False
        from ..ingestion import record_sha256

        if rec.get("features") is not None:
            width = self.report.setdefault("n_features", len(rec["features"]))
            if len(rec["features"]) != width:
                self.error(lineno, f"a record with {len(rec['features'])} features in a corpus of {width}-feature "
                                   "records (mixed sizes: resize before ingesting)")
                return False
        digest = rec.get("sha256") or record_sha256(text=rec["text"], question=rec["question"], answer=rec["answer"])
        rec["sha256"] = digest
        if digest in self.seen:
            r["duplicate_texts"] += 1
            if len(r["duplicates"]) < REPORT_MAX_LINES:
                r["duplicates"].append({"line": lineno, "same_as_line": self.seen[digest]})
        else:
            self.seen[digest] = lineno
        key = _subject_key(rec)
        if key:
            self.subjects.add(key)
        else:
            r["without_subject"] += 1
        r["records"] += 1
        r[rec["split"]] += 1
        return True


def corpus_records_iter(uri: str, *, on_error: Callable[[int, str], None],
                        progress: Callable[[int, int], None] | None = None, digest=None) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for every parseable line of the source; bad lines go to
    ``on_error(line, message)``. ``digest`` (a hashlib object) is fed every raw byte;
    ``progress(lines, bytes)`` is called every 1000 lines."""
    n_bytes = 0
    for lineno, raw in enumerate(corpus_source_lines(uri), 1):
        n_bytes += len(raw)
        if digest is not None:
            digest.update(raw)
        if progress and lineno % 1000 == 0:
            progress(lineno, n_bytes)
        try:
            rec = corpus_parse_line(raw)
        except ValueError as exc:
            on_error(lineno, str(exc))
            continue
        if rec is not None:
            yield lineno, rec


def corpus_validate(uri: str, *, progress: Callable[[int, int], None] | None = None) -> dict:
    """Validation report of the corpus at ``uri`` in one streaming pass (nothing is written).

    Report: ``lines``, ``records``, ``train``, ``holdout``, ``kind``, ``subjects`` (distinct ids /
    e-mails / names), ``without_subject``, ``duplicate_texts`` (+ the first ``duplicates`` as
    ``{line, same_as_line}``), ``errors`` and the first ``bad_lines`` ``{line, error}``,
    ``content_sha256`` (sha256 of the file's bytes) and ``valid`` (no error and ≥ 1 train record).

    Raises:
        ServiceError: the source cannot be read.
    """
    v = _Validator()
    digest = hashlib.sha256()
    last = 0
    for lineno, rec in corpus_records_iter(uri, on_error=v.error, progress=progress, digest=digest):
        v.add(lineno, rec)
        last = lineno
    r = v.report
    r["lines"] = max(last, r["lines"])
    r["subjects"] = len(v.subjects)
    r["content_sha256"] = digest.hexdigest()
    if r["train"] == 0 and not r["errors"]:
        v.error(0, "the corpus has no training records")
    r["valid"] = r["errors"] == 0
    return r


# --- ingestion --------------------------------------------------------------------------------------

def corpus_ingest_request(*, actor, name: str, source_uri: str, description: str = "") -> PreparationJob:
    """Queue the ingestion of a validated source as a ``corpus_ingest`` preparation job.

    Raises:
        ServiceError: empty or taken name, unreadable source.
    """
    from .preparation import preparation_enqueue_on_commit

    name = (name or "").strip()
    if not name:
        raise ServiceError("a corpus needs a name")
    if TrainingCorpus.objects.filter(name=name).exists():
        raise ServiceError(f"a corpus named '{name}' already exists")
    uri = corpus_source_check(source_uri)
    with transaction.atomic():
        job = PreparationJob.objects.create(
            kind=PreparationJob.KIND_CORPUS_INGEST, params={"name": name, "source_uri": uri, "description": description},
            requested_by=_actor(actor),
        )
        audit_event_record(actor=actor, verb="corpus.ingest_requested", obj=job,
                           after={"name": name, "source_uri": uri})
        preparation_enqueue_on_commit(job)
    return job


def _actor(actor) -> str:
    from ..audit import _actor_label

    return _actor_label(actor)


def _subject_for(rec: dict, cache: dict[str, DataSubject]) -> DataSubject | None:
    """Match (by subject_id, then e-mail hash) or create the record's subject; aliases are merged."""
    key = _subject_key(rec)
    if not key:
        return None
    subject = cache.get(key)
    if subject is None:
        email_hash = email_sha256(rec["email"]) if rec["email"] else ""
        if rec["subject_id"]:
            subject = DataSubject.objects.filter(external_ids__subject_id=rec["subject_id"]).order_by("id").first()
        if subject is None and email_hash:
            subject = DataSubject.objects.filter(email_sha256=email_hash).order_by("id").first()
        if subject is None:
            subject = DataSubject.objects.create(
                display_name=rec["subject_name"] or rec["subject_id"] or "unnamed data subject",
                aliases=[], email_sha256=email_hash,
                external_ids={"subject_id": rec["subject_id"]} if rec["subject_id"] else {},
            )
        cache[key] = subject
    new_aliases = [a for a in rec["aliases"] + ([rec["subject_name"]] if rec["subject_name"] else [])
                   if a != subject.display_name and a not in subject.aliases]
    if new_aliases or (rec["email"] and not subject.email_sha256):
        subject.aliases = subject.aliases + new_aliases
        subject.email_sha256 = subject.email_sha256 or email_sha256(rec["email"])
        subject.save(update_fields=["aliases", "email_sha256"])
    return subject


def corpus_ingest_apply(*, name: str, source_uri: str, description: str = "", actor="system",
                        progress: Callable[[int, int], None] | None = None,
                        report: dict | None = None) -> tuple[TrainingCorpus | None, dict]:
    """Validate, then (only when valid) write corpus, subjects and records in one transaction.

    Returns ``(corpus, report)``; ``corpus`` is ``None`` when the report has errors. The source is
    read twice (validation, skipped when a ``report`` of it is given; then writing), each time streamed; a content digest that changed
    between the two passes aborts the transaction.

    Raises:
        ServiceError: a name already taken, an unreadable source, a source changed while ingesting.
    """
    report = report or corpus_validate(source_uri, progress=progress)
    if not report["valid"]:
        return None, report
    with transaction.atomic():
        if TrainingCorpus.objects.filter(name=name).exists():
            raise ServiceError(f"a corpus named '{name}' already exists")
        corpus = TrainingCorpus.objects.create(
            name=name, description=description, kind=report["kind"], artifact_uri=source_uri,
            content_sha256=report["content_sha256"], record_count=report["train"],
        )
        subjects: dict[str, DataSubject] = {}
        index = {TrainingRecord.SPLIT_TRAIN: 0, TrainingRecord.SPLIT_HOLDOUT: 0}
        batch: list[TrainingRecord] = []
        digest = hashlib.sha256()
        errors: list = []
        from ..ingestion import record_sha256

        for _, rec in corpus_records_iter(source_uri, on_error=lambda n, m: errors.append((n, m)), digest=digest):
            batch.append(TrainingRecord(
                corpus=corpus, split=rec["split"], index=index[rec["split"]], text=rec["text"],
                question=rec["question"], answer=rec["answer"], subject=_subject_for(rec, subjects),
                features=rec.get("features"), label=rec.get("label"),
                sha256=rec.get("sha256") or record_sha256(text=rec["text"], question=rec["question"],
                                                          answer=rec["answer"]),
            ))
            index[rec["split"]] += 1
            if len(batch) >= BATCH:
                TrainingRecord.objects.bulk_create(batch)
                batch = []
        TrainingRecord.objects.bulk_create(batch)
        if errors or digest.hexdigest() != report["content_sha256"]:
            raise ServiceError("the corpus source changed while it was ingested; nothing was registered")
        audit_event_record(actor=actor, verb="corpus.ingested", obj=corpus, after={
            "name": name, "records": report["train"], "holdout": report["holdout"], "subjects": report["subjects"],
            "content_sha256": report["content_sha256"], "source_uri": source_uri})
    return corpus, report
