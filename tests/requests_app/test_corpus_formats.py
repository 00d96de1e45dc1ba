"""Image-archive and CSV corpora through the corpus API (issue 19 item 2): conversion to feature rows,
every bad input a 400 naming the line, nothing half-ingested."""
from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from requests_app.models import DataSubject, JobStatus, PreparationJob, TrainingCorpus

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'store'}"
    return tmp_path / "store"


def _png(w=2, h=2, value=0, fmt="PNG", mode="L"):
    buf = io.BytesIO()
    Image.new(mode, (w, h), value).save(buf, format=fmt)
    return buf.getvalue()


def _manifest(rows):
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _zip(files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _tar(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ROWS = [{"file": "a.png", "label": "zero", "subject": "w1", "subject_name": "Writer One"},
        {"file": "b.jpg", "label": 1, "subject": "w1"},
        {"file": "c.png", "label": "one", "subject": "w2", "split": "holdout"}]


def _files(**over):
    files = {"a.png": _png(value=10), "b.jpg": _png(value=200, fmt="JPEG"), "c.png": _png(value=30),
             "manifest.jsonl": _manifest(ROWS)}
    files.update(over)
    return files


def _post(client, archive: bytes, name="imgs.zip", dry=False, **extra):
    data = {"name": "digits-own", "format": "image_archive", "classes": "zero,one",
            "file": SimpleUploadedFile(name, archive), **extra}
    return client.post("/api/v1/corpora/" + ("?dry_run=1" if dry else ""), data, format="multipart")


def test_zip_archive_ingests_as_feature_rows_with_subjects(api, users, store, django_capture_on_commit_callbacks):
    client = api("operator")
    r = _post(client, _zip(_files()), dry=True)
    assert r.status_code == 200, r.content
    rep = r.json()["report"]
    assert rep["kind"] == "image" and rep["train"] == 2 and rep["holdout"] == 1 and rep["subjects"] == 2
    assert rep["conversion"]["image_shape"] == [1, 2, 2] and rep["conversion"]["class_names"] == ["zero", "one"]
    with django_capture_on_commit_callbacks(execute=True):
        r = _post(client, _zip(_files()))
    assert r.status_code == 202, r.content
    job = PreparationJob.objects.get(public_id=r.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    corpus = TrainingCorpus.objects.get(name="digits-own")
    recs = list(corpus.records.order_by("split", "index"))
    assert sorted(r.label for r in recs) == [0, 1, 1]
    first = next(r for r in recs if r.split == "train" and r.label == 0)
    assert first.features == [10.0] * 4 and first.subject.display_name == "Writer One"


def test_tar_archive_with_separate_manifest_and_rgb(api, users, store):
    files = _files()
    manifest = files.pop("manifest.jsonl")
    r = _post(api("operator"), _tar(files), name="imgs.tar.gz", dry=True, mode="RGB",
              manifest=SimpleUploadedFile("m.jsonl", manifest))
    assert r.status_code == 200, r.content
    assert r.json()["report"]["conversion"]["image_shape"] == [3, 2, 2]


@pytest.mark.parametrize("over, extra, message", [
    ({"b.jpg": b"not an image at all"}, {}, "manifest line 2: file 'b.jpg' is not a PNG or JPEG image"),
    ({"a.png": _png(40, 40)}, {}, "manifest line 1: image 'a.png' has 40×40 = 1600 pixels (limit 1000)"),
    ({"manifest.jsonl": _manifest([*ROWS[:2], {"file": "c.png", "label": "two"}])}, {},
     "manifest line 3: label 'two' is not in the class list"),
    ({"manifest.jsonl": _manifest([{"file": "a.png", "label": 5}])}, {}, "manifest line 1: label 5 is outside"),
    ({"manifest.jsonl": _manifest([*ROWS, {"file": "missing.png", "label": 0}])}, {},
     "manifest line 4: file 'missing.png' is not in the archive"),
    ({"c.png": _png(3, 2)}, {}, "manifest line 3: image 'c.png' is 3×2"),
    ({"manifest.jsonl": b"{not json\n"}, {}, "manifest line 1: not valid JSON"),
    ({}, {"classes": ""}, "needs its class list"),
])
def test_bad_image_corpus_is_400_naming_the_line_and_nothing_is_stored(api, users, store, settings, over, extra,
                                                                        message):
    settings.CORPUS_IMAGE_MAX_PIXELS = 1000
    r = _post(api("operator"), _zip(_files(**over)), **extra)
    assert r.status_code == 400, r.content
    assert message in r.json()["detail"]
    assert not TrainingCorpus.objects.exists() and not DataSubject.objects.exists()
    assert not PreparationJob.objects.exists() and not (store / "corpora").exists()


def test_mixed_sizes_with_declared_resize_are_accepted(api, users, store):
    r = _post(api("operator"), _zip(_files(**{"c.png": _png(3, 2)})), dry=True, resize="4x4")
    assert r.status_code == 200, r.content
    assert r.json()["report"]["conversion"]["image_shape"] == [1, 4, 4]
    assert r.json()["report"]["n_features"] == 16


def test_not_an_archive_is_400(api, users, store):
    r = _post(api("operator"), b"plain bytes")
    assert r.status_code == 400 and "neither a zip nor a tar" in r.json()["detail"]


CSV = b"mean_radius,texture,label,subject_id,split\n1.5,2.0,0,p1,train\n3.0,4.5,1,p2,holdout\n2.0,1.0,1,p3,\n"


def _post_csv(client, body, dry=True, **extra):
    return client.post("/api/v1/corpora/" + ("?dry_run=1" if dry else ""),
                       {"name": "bc-own", "format": "csv", "file": SimpleUploadedFile("t.csv", body), **extra},
                       format="multipart")


def test_csv_corpus_converts_and_ingests(api, users, store, django_capture_on_commit_callbacks):
    r = _post_csv(api("operator"), CSV)
    assert r.status_code == 200, r.content
    rep = r.json()["report"]
    assert rep["kind"] == "tabular" and rep["train"] == 2 and rep["holdout"] == 1 and rep["n_features"] == 2
    assert rep["conversion"]["feature_columns"] == ["mean_radius", "texture"]
    with django_capture_on_commit_callbacks(execute=True):
        r = _post_csv(api("operator"), CSV, dry=False)
    assert r.status_code == 202
    corpus = TrainingCorpus.objects.get(name="bc-own")
    assert sorted(r.features for r in corpus.records.all()) == [[1.5, 2.0], [2.0, 1.0], [3.0, 4.5]]


@pytest.mark.parametrize("body, extra, message", [
    (b"a,b\n1,2\n", {}, "CSV line 1: the header needs a 'label' column"),
    (b"a,label\n1,0\nx,1\n", {}, "CSV line 3: a feature is not a number"),
    (b"a,label\n1,0\n2,cat\n", {}, "CSV line 3: label 'cat' is not an integer class"),
    (b"a,label\n1,benign\n2,cat\n", {"classes": "benign,malignant"}, "CSV line 3: label 'cat' is not in the class"),
    (b"a,label\n1,0,9\n", {}, "CSV line 2: 3 fields, the header has 2"),
    (b"f1,f1,label\n1,2,0\n", {}, "CSV line 1: duplicate column names ['f1']"),  # fresh-user finding
])
def test_bad_csv_is_400_naming_the_line(api, users, store, body, extra, message):
    r = _post_csv(api("operator"), body, dry=False, **extra)
    assert r.status_code == 400, r.content
    assert message in r.json()["detail"] and not TrainingCorpus.objects.exists()


def test_decompression_bomb_header_is_400_not_500(api, users, store, settings):
    """Regression (fresh-user trial): a PNG whose header claims 60000×60000 pixels made Pillow raise
    DecompressionBombError inside Image.open, a 500; it is the pixel-limit 400 naming the line."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    r = _post(api("operator"), _zip(_files(**{"a.png": bomb})))
    assert r.status_code == 400, r.content
    assert "manifest line 1: image 'a.png' has too many pixels" in r.json()["detail"]
    assert not TrainingCorpus.objects.exists()
