"""Classifier corpora in operator formats, converted to the feature-row JSONL of
:mod:`.corpora` before validation (issue 19 item 2).

- ``image_archive``: a zip or tar(.gz) of PNG/JPEG files and a JSON Lines manifest (``manifest.jsonl``
  at the archive root, or uploaded separately), one line per image::

      {"file": "img/0001.png", "label": "cat" | 3, "subject": "writer-7"}   (+ optional "split", "subject_name")

  ``classes`` (the class list) is required; a label is a class name or an index into it. Each image
  is decoded with Pillow, converted to ``mode`` (``"L"``: 1 channel, ``"RGB"``: 3), optionally
  resized to ``resize`` = (width, height) (bilinear), and flattened channel-first (C, H, W) into
  ``features`` (pixel values 0…255). The shape is reported as ``image_shape`` [C, H, W].
- ``csv``: a header line, one row per record; ``label`` column required (an integer class or, with
  ``classes``, a class name), optional ``subject_id``, ``subject_name``, ``split``; every other
  column is a numeric feature.

Errors raise :class:`ServiceError` naming the manifest / CSV line: a file that is not a PNG or JPEG
image, an image over ``max_pixels`` (width × height, checked before decoding), a label outside the
class list, a line pointing to a file missing from the archive, images of different sizes without
``resize``, a non-numeric feature. The conversion writes only a temporary JSONL; nothing is
registered unless the whole corpus converts and validates (:func:`.corpora.corpus_ingest_apply`).
"""
from __future__ import annotations

import csv
import io
import json
import math
import tarfile
import zipfile
from pathlib import PurePosixPath

from .common import ServiceError

FORMATS = ("jsonl", "image_archive", "csv")
IMAGE_FORMATS = ("PNG", "JPEG")
MANIFEST_NAME = "manifest.jsonl"
MAX_MEMBER_BYTES = 32 << 20


class _Archive:
    """Read-only view of a zip or tar archive's regular files by normalised path."""

    def __init__(self, fileobj):
        data = fileobj.read()
        buf = io.BytesIO(data)
        if zipfile.is_zipfile(buf):
            self._zip = zipfile.ZipFile(buf)
            self._members = {self._norm(i.filename): i for i in self._zip.infolist() if not i.is_dir()}
            self._tar = None
        else:
            buf.seek(0)
            try:
                self._tar = tarfile.open(fileobj=buf, mode="r:*")
            except tarfile.TarError as exc:
                raise ServiceError("the upload is neither a zip nor a tar archive") from exc
            self._members = {self._norm(m.name): m for m in self._tar.getmembers() if m.isfile()}
            self._zip = None

    @staticmethod
    def _norm(name: str) -> str:
        return str(PurePosixPath(name.lstrip("./")))

    def read(self, name: str) -> bytes | None:
        """The member's bytes, ``None`` when absent. Raises ServiceError for an oversized member."""
        m = self._members.get(self._norm(name))
        if m is None:
            return None
        size = m.file_size if self._zip is not None else m.size
        if size > MAX_MEMBER_BYTES:
            raise ServiceError(f"archive member '{name}' is {size} bytes (limit {MAX_MEMBER_BYTES})")
        return self._zip.read(m) if self._zip is not None else self._tar.extractfile(m).read()


def parse_classes(value) -> list[str]:
    """The class list from a JSON list or a comma-separated string; [] when empty.
    Raises ServiceError on duplicates."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = [c.strip() for c in value.split(",")]
    else:
        parsed = value
    if not isinstance(parsed, list) or not all(isinstance(c, (str, int)) for c in parsed):
        raise ServiceError("'classes' must be a list of class names")
    out = [str(c).strip() for c in parsed if str(c).strip()]
    if len(set(out)) != len(out):
        raise ServiceError("'classes' lists a class twice")
    return out


def parse_resize(value) -> tuple[int, int] | None:
    """``"WxH"`` → (W, H); ``None`` when empty. Raises ServiceError on another form."""
    if not value:
        return None
    try:
        w, h = (int(v) for v in str(value).lower().split("x"))
    except ValueError:
        raise ServiceError(f"'resize' must be WIDTHxHEIGHT (e.g. 8x8), not {value!r}") from None
    if not (1 <= w <= 4096 and 1 <= h <= 4096):
        raise ServiceError("'resize' sides must be between 1 and 4096 pixels")
    return w, h


def _label_index(label, classes: list[str], where: str) -> int:
    if isinstance(label, bool):
        label = str(label)
    if isinstance(label, int):
        if not 0 <= label < len(classes):
            raise ServiceError(f"{where}: label {label} is outside the class list (0…{len(classes) - 1})")
        return label
    if isinstance(label, str) and label in classes:
        return classes.index(label)
    raise ServiceError(f"{where}: label {label!r} is not in the class list {classes}")


def _image_features(data: bytes, *, name: str, where: str, mode: str, resize, max_pixels: int):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format
    except Image.DecompressionBombError:  # Pillow refuses > 2 × MAX_IMAGE_PIXELS before our check
        raise ServiceError(f"{where}: image '{name}' has too many pixels (limit {max_pixels})") from None
    except (UnidentifiedImageError, OSError):
        fmt = None
    if fmt not in IMAGE_FORMATS:
        raise ServiceError(f"{where}: file '{name}' is not a PNG or JPEG image")
    w, h = img.size
    if w * h > max_pixels:
        raise ServiceError(f"{where}: image '{name}' has {w}×{h} = {w * h} pixels (limit {max_pixels})")
    try:
        img = img.convert(mode)
        if resize:
            img = img.resize(resize, Image.BILINEAR)
    except (OSError, ValueError) as exc:
        raise ServiceError(f"{where}: image '{name}' cannot be decoded ({exc})") from None
    import numpy as np

    arr = np.asarray(img, dtype=np.float64)  # (H, W) or (H, W, C)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return arr.ravel().tolist(), list(arr.shape)


def image_archive_to_jsonl(archive_file, out, *, classes, manifest_file=None, resize=None, mode: str = "L",
                           max_pixels: int = 1_000_000) -> dict:
    """Convert an image archive (module docstring) into feature-row JSONL written to ``out`` (a
    binary file). Returns ``{"format", "images", "image_shape", "class_names", "resize", "mode"}``.

    Raises:
        ServiceError: the first bad manifest line (named), a bad archive, no class list, no manifest.
    """
    if mode not in ("L", "RGB"):
        raise ServiceError("'mode' must be 'L' (grey) or 'RGB'")
    if not classes:
        raise ServiceError("an image corpus needs its class list ('classes')")
    archive = _Archive(archive_file)
    manifest = manifest_file.read() if manifest_file is not None else archive.read(MANIFEST_NAME)
    if manifest is None:
        raise ServiceError(f"no manifest: upload 'manifest' or put {MANIFEST_NAME} at the archive root")
    shape, count = None, 0
    for lineno, raw in enumerate(manifest.splitlines(), 1):
        where = f"manifest line {lineno}"
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ServiceError(f"{where}: not valid JSON") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or "label" not in entry:
            raise ServiceError(f"{where}: needs 'file' (a path in the archive) and 'label'")
        label = _label_index(entry["label"], classes, where)
        data = archive.read(entry["file"])
        if data is None:
            raise ServiceError(f"{where}: file '{entry['file']}' is not in the archive")
        feats, s = _image_features(data, name=entry["file"], where=where, mode=mode, resize=resize,
                                   max_pixels=max_pixels)
        if shape is None:
            shape = s
        elif s != shape:
            raise ServiceError(f"{where}: image '{entry['file']}' is {s[2]}×{s[1]} ({s[0]} channels) but the first "
                               f"is {shape[2]}×{shape[1]} ({shape[0]}); declare 'resize' (e.g. 8x8)")
        row = {"features": feats, "label": label, "kind": "image", "split": entry.get("split") or "train"}
        for src, dst in (("subject", "subject_id"), ("subject_id", "subject_id"), ("subject_name", "subject_name")):
            if entry.get(src) not in (None, ""):
                row[dst] = entry[src]
        out.write((json.dumps(row) + "\n").encode())
        count += 1
    if not count:
        raise ServiceError("the manifest lists no image")
    return {"format": "image_archive", "images": count, "image_shape": shape, "class_names": classes,
            "resize": list(resize) if resize else None, "mode": mode}


def csv_to_jsonl(csv_file, out, *, classes=()) -> dict:
    """Convert a tabular CSV (module docstring) into feature-row JSONL written to ``out``.
    Returns ``{"format", "rows", "feature_columns", "class_names"}``.

    Raises:
        ServiceError: the first bad line (named; the header is line 1), no ``label`` column.
    """
    try:
        text = io.StringIO(csv_file.read().decode("utf-8"), newline="")
    except UnicodeDecodeError:
        raise ServiceError("the CSV file is not UTF-8") from None
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ServiceError("the CSV file is empty") from None
    except csv.Error as exc:
        raise ServiceError(f"CSV line 1: {exc}") from None
    if "label" not in header:
        raise ServiceError("CSV line 1: the header needs a 'label' column")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ServiceError(f"CSV line 1: duplicate column names {dupes}")
    meta = {"label", "subject_id", "subject_name", "split"}
    feature_cols = [i for i, h in enumerate(header) if h not in meta]
    if not feature_cols:
        raise ServiceError("CSV line 1: no feature column")
    col = {h: i for i, h in enumerate(header)}
    count = 0
    try:
        for row in reader:
            where = f"CSV line {reader.line_num}"
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise ServiceError(f"{where}: {len(row)} fields, the header has {len(header)}")
            try:
                feats = [float(row[i]) for i in feature_cols]
            except ValueError:
                raise ServiceError(f"{where}: a feature is not a number") from None
            if not all(math.isfinite(v) for v in feats):
                raise ServiceError(f"{where}: a feature is not finite")
            raw = row[col["label"]].strip()
            label = _label_index(int(raw) if raw.lstrip("-").isdigit() else raw, list(classes), where) if classes \
                else _int_label(raw, where)
            rec = {"features": feats, "label": label, "kind": "tabular"}
            for key in ("subject_id", "subject_name", "split"):
                if key in col and row[col[key]].strip():
                    rec[key] = row[col[key]].strip()
            out.write((json.dumps(rec) + "\n").encode())
            count += 1
    except csv.Error as exc:
        raise ServiceError(f"CSV line {reader.line_num}: {exc}") from None
    if not count:
        raise ServiceError("the CSV file has no data row")
    return {"format": "csv", "rows": count, "feature_columns": [header[i] for i in feature_cols],
            "class_names": list(classes)}


def _int_label(raw: str, where: str) -> int:
    if not raw.isdigit():
        raise ServiceError(f"{where}: label {raw!r} is not an integer class (give 'classes' to use names)")
    return int(raw)
