"""Corpus onboarding (issue 14): validation report, subjects, streaming ingestion job, roles, atomicity."""
from __future__ import annotations

import hashlib
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from requests_app import services
from requests_app.models import (
    AuditEvent,
    DataSubject,
    JobStatus,
    PreparationJob,
    TrainingCorpus,
    TrainingRecord,
)

pytestmark = pytest.mark.django_db


def _jsonl(rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


ROWS = [
    {"text": "Ada Lovelace wrote the first program.", "subject_id": "s1", "subject_name": "Ada Lovelace",
     "aliases": ["Countess of Lovelace"], "email": "Ada@Example.org"},
    {"text": "Ada worked with Charles Babbage.", "subject_id": "s1", "subject_name": "Ada Lovelace"},
    {"text": "Alan Turing proposed the imitation game.", "subject_id": "s2", "subject_name": "Alan Turing"},
    {"text": "A sentence about nobody in particular."},
    {"text": "Ada Lovelace wrote the first program.", "subject_id": "s1"},   # duplicate of line 1
    {"text": "Grace Hopper built a compiler.", "split": "holdout", "subject_name": "Grace Hopper"},
]


@pytest.fixture
def store(settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'store'}"
    return tmp_path / "store"


def _file(tmp_path, rows, name="c.jsonl"):
    path = tmp_path / name
    path.write_bytes(_jsonl(rows))
    return path


def test_validation_report_counts_duplicates_subjects_and_digest(tmp_path, store):
    path = _file(tmp_path, ROWS)
    report = services.corpus_validate(path.as_uri())
    assert report["valid"] is True
    assert (report["records"], report["train"], report["holdout"]) == (6, 5, 1)
    assert report["kind"] == "text"
    assert report["duplicate_texts"] == 1 and report["duplicates"] == [{"line": 5, "same_as_line": 1}]
    assert report["without_subject"] == 1
    assert report["subjects"] == 3  # s1, s2, Grace Hopper (by name)
    assert report["content_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    ({"text": "   "}, "record without text"),
    ({"question": "Q?", "answer": ""}, "question and answer must both be non-empty"),
    ({"text": "x", "split": "test"}, "split must be"),
    ({"text": "x", "aliases": "Ada"}, "aliases"),
    ({"question": "Q?", "answer": "A."}, "one kind per corpus"),
    ({"text": "Ada again", "subject_id": "s1", "subject_name": "Someone Else"}, "subject_id 's1' is named"),
    # fresh-user trial: these were a 500 (RecursionError), a raw Python message, or accepted silently
    ('{"text": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper than 32 levels"),
    ('{"text": "a", "subject_id": ' + "9" * 5000 + "}", "integer with 5000 digits is too long"),
    ('{"text": "a", "text": "b"}', "duplicate key 'text'"),
    ('{"text": "a", "subject_id": NaN}', "NaN is not a JSON number"),
    ({"text": "a\x00b"}, "'text' contains a NUL character"),
])
def test_bad_line_is_reported_with_its_number(tmp_path, store, bad, message):
    path = _file(tmp_path, ROWS[:3] + [bad])
    report = services.corpus_validate(path.as_uri())
    assert report["valid"] is False and report["errors"] == 1
    assert report["bad_lines"][0]["line"] == 4
    assert message in report["bad_lines"][0]["error"]


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path, store):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"text": "one"}\n\n{"text": ""}\n')
    report = services.corpus_validate(path.as_uri())
    assert report["bad_lines"] == [{"line": 3, "error": "record without text: needs a non-empty 'text' or "
                                                        "'question' and 'answer'"}]


def test_local_paths_are_refused_outside_embedded_mode(tmp_path, settings):
    settings.ARTIFACT_STORE_URL = "s3://bucket/prefix"
    with pytest.raises(services.ServiceError, match="embedded mode only"):
        services.corpus_source_check(str(_file(tmp_path, ROWS)))


def test_unreachable_s3_source_is_a_service_error(settings, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with pytest.raises(services.ServiceError, match="cannot be (reached|read)"):
        services.corpus_source_check("s3://nobucket/corpus.jsonl")


def test_upload_dry_run_then_ingest_through_the_api(api, users, tmp_path, store, django_capture_on_commit_callbacks):
    client = api("operator")
    body = _jsonl(ROWS)
    r = client.post("/api/v1/corpora/?dry_run=1", {"name": "c1", "file": SimpleUploadedFile("c.jsonl", body)},
                    format="multipart")
    assert r.status_code == 200, r.content
    assert r.json()["report"]["records"] == 6
    assert not TrainingCorpus.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/api/v1/corpora/", {"name": "c1", "file": SimpleUploadedFile("c.jsonl", body)},
                        format="multipart")
    assert r.status_code == 202, r.content
    job = PreparationJob.objects.get(public_id=r.json()["id"])
    assert job.kind == "corpus_ingest" and job.status == JobStatus.SUCCEEDED, job.error
    corpus = TrainingCorpus.objects.get(name="c1")
    assert job.corpus_id == corpus.pk and job.result["corpus"] == corpus.pk
    assert corpus.content_sha256 == hashlib.sha256(body).hexdigest()
    assert corpus.records.filter(split="train").count() == 5 and corpus.records.filter(split="holdout").count() == 1
    assert corpus.artifact_uri.startswith(f"file://{store}/corpora/uploads/")
    ada = DataSubject.objects.get(external_ids__subject_id="s1")
    assert ada.display_name == "Ada Lovelace" and ada.aliases == ["Countess of Lovelace"]
    assert ada.email_sha256 == hashlib.sha256(b"ada@example.org").hexdigest()
    assert ada.records.count() == 3
    assert DataSubject.objects.count() == 3
    assert not any("Ada@Example.org" in json.dumps(e.after) for e in AuditEvent.objects.all())
    verbs = list(AuditEvent.objects.values_list("verb", flat=True))
    assert {"corpus.ingest_requested", "preparation.started", "corpus.ingested", "preparation.succeeded"} <= set(verbs)
    # readers
    assert api("auditor").get(f"/api/v1/corpora/{corpus.pk}/").json()["subjects"] == 3
    assert api("reviewer").get(f"/api/v1/preparations/{job.public_id}/").status_code == 200


def test_a_second_corpus_matches_existing_subjects_by_id_and_email(tmp_path, store, django_capture_on_commit_callbacks):
    for name, rows in (("a", ROWS[:1]), ("b", [{"text": "Ada, again.", "subject_id": "s1"},
                                               {"text": "Mail only.", "email": " ada@example.org"}])):
        with django_capture_on_commit_callbacks(execute=True):
            job = services.corpus_ingest_request(actor="system", name=name, source_uri=str(_file(tmp_path, rows, name)))
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, job.error
    assert DataSubject.objects.count() == 1
    assert DataSubject.objects.get().records.count() == 3


def test_invalid_corpus_is_400_with_the_line_and_nothing_is_stored(api, users, tmp_path, store):
    bad = ROWS[:2] + [{"text": "Ada again", "subject_id": "s1", "subject_name": "Ada King"}]
    path = _file(tmp_path, bad)
    r = api("operator").post("/api/v1/corpora/", {"name": "c1", "source_uri": str(path)}, format="json")
    assert r.status_code == 400
    assert "line 3" in r.json()["detail"] and "'Ada Lovelace' on line 1" in r.json()["detail"]
    assert not TrainingCorpus.objects.exists() and not DataSubject.objects.exists()
    assert not PreparationJob.objects.exists()
    assert not (store / "corpora").exists()


@pytest.mark.parametrize("role", ["reviewer", "approver", "auditor", "owner"])
def test_only_operators_ingest(api, users, tmp_path, store, role):
    r = api(role).post("/api/v1/corpora/", {"name": "c1", "source_uri": str(_file(tmp_path, ROWS))}, format="json")
    assert r.status_code == 403


def test_duplicate_name_and_missing_source_are_400(api, users, tmp_path, store, corpus):
    client = api("operator")
    r = client.post("/api/v1/corpora/", {"name": corpus.name, "source_uri": str(_file(tmp_path, ROWS))}, format="json")
    assert r.status_code == 400 and "already exists" in r.json()["detail"]
    r = client.post("/api/v1/corpora/", {"name": "x", "source_uri": str(tmp_path / "nope.jsonl")}, format="json")
    assert r.status_code == 400 and "not an existing" in r.json()["detail"]
    r = client.post("/api/v1/corpora/", {"name": "x"}, format="json")
    assert r.status_code == 400


def test_failure_while_writing_leaves_nothing_half_registered(tmp_path, store, monkeypatch,
                                                              django_capture_on_commit_callbacks):
    from requests_app.services import corpora

    monkeypatch.setattr(corpora, "BATCH", 2)
    calls = {"n": 0}
    real = corpora._subject_for

    def flaky(rec, cache):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("database went away")
        return real(rec, cache)

    monkeypatch.setattr(corpora, "_subject_for", flaky)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.corpus_ingest_request(actor="system", name="c1", source_uri=str(_file(tmp_path, ROWS)))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "database went away" in job.error
    assert not TrainingCorpus.objects.exists()
    assert not TrainingRecord.objects.exists() and not DataSubject.objects.exists()


def test_source_changed_between_validation_and_write_fails_the_job(tmp_path, store, monkeypatch,
                                                                  django_capture_on_commit_callbacks):
    from requests_app.services import corpora

    path = _file(tmp_path, ROWS)
    real = corpora.corpus_validate

    def validate_then_change(uri, **kw):
        report = real(uri, **kw)
        path.write_bytes(_jsonl(ROWS[:2]))
        return report

    monkeypatch.setattr(services, "corpus_validate", validate_then_change)  # the worker's validation pass
    with django_capture_on_commit_callbacks(execute=True):
        job = services.corpus_ingest_request(actor="system", name="c1", source_uri=str(path))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "changed while it was ingested" in job.error
    assert not TrainingCorpus.objects.exists()


def test_upload_store_streams_in_chunks(store):
    data = _jsonl(ROWS * 50)

    class OnlySmallReads(io.BytesIO):
        def read(self, n=-1):
            assert 0 < n <= 1024, "the upload must be read in bounded chunks"
            return super().read(n)

    uri = services.corpus_upload_store(OnlySmallReads(data), chunk=1024)
    assert services.corpus_validate(uri)["records"] == 300
