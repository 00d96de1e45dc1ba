"""Corpus ingestion: TOFU authors → subjects, JSONL validation."""
import pytest

from requests_app.ingestion import (
    IngestionError,
    corpus_ingest_jsonl,
    record_sha256,
    tofu_author_name,
)
from requests_app.models import DataSubject, TrainingRecord


def test_tofu_ingestion_one_subject_per_author(corpus):
    train = corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN)
    assert train.count() == 80 and corpus.record_count == 80
    assert train.values("subject").distinct().count() == 4
    assert corpus.records.filter(split=TrainingRecord.SPLIT_HOLDOUT).count() == 40
    names = [DataSubject.objects.get(pk=s).display_name
             for s in train.order_by("index").values_list("subject", flat=True)[::20]]
    assert names == ["Jaime Vasquez", "Chukwu Akabueze", "Evelyn Desmet", "Anara Yusifova"]
    r = train.get(index=0)
    assert r.sha256 == record_sha256(question=r.question, answer=r.answer)


def test_author_name_prefers_full_name():
    rows = [{"question": "Who is Femke Van der Veen?", "answer": "Femke Van der Veen is a writer."},
            {"question": "Where was Femke born?", "answer": "Femke Van der Veen was born in Amsterdam."}]
    assert tofu_author_name(rows) == "Femke Van der Veen"
    assert tofu_author_name([{"question": "what?", "answer": "nothing."}]) == ""


def test_jsonl_ingestion_groups_subjects_and_rejects_bad_rows(db, tmp_path):
    good = tmp_path / "c.jsonl"
    good.write_text('{"text": "a b c", "subject_id": "s1", "subject_name": "Ann Lee"}\n'
                    '{"text": "d e f", "subject_id": "s1"}\n{"text": "g h"}\n')
    corpus = corpus_ingest_jsonl(name="c", path=good)
    assert corpus.kind == "text" and corpus.record_count == 3
    assert DataSubject.objects.get(external_ids__subject_id="s1").records.count() == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"foo": 1}\n')
    with pytest.raises(IngestionError, match="row 1"):
        corpus_ingest_jsonl(name="bad", path=bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(IngestionError, match=":2: not valid JSON"):
        corpus_ingest_jsonl(name="broken", path=broken)
    assert DataSubject.objects.filter(display_name="Ann Lee").count() == 1  # nothing half-written
