"""Reading benchmark files (MUSE-News, TOFU) and seeded subsampling.

Benchmark data is read at run time from its own directory (DESIGN §10: ``../shared/data``);
nothing here copies data into reports: reports keep file digests and sampled row indices only.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

__all__ = [
    "read_records",
    "file_sha256",
    "sample_indices",
    "split_record",
    "default_data_dir",
]


def default_data_dir(name: str) -> Path:
    """Where the benchmark ``name`` lives: ``$UNLEARNING_DATA_DIR/<name>`` when that variable
    is set (e.g. a copy carried to another machine); else the first existing of
    ``<repo>/../shared/data/<name>`` (DESIGN §10) and ``/work/shared/data/<name>`` (the shared
    data of this workplace, for a checkout elsewhere); else the former path."""
    import os

    root = os.environ.get("UNLEARNING_DATA_DIR")
    if root:
        return Path(root) / name
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / name
    for cand in (beside, Path("/work/shared/data") / name):
        if cand.is_dir():
            return cand
    return beside


def read_records(path: str | Path) -> list[Any]:
    """Records of a JSON file: a JSON array (MUSE files) or JSON Lines (TOFU files).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` if the content is
    neither a JSON array nor JSON Lines.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: neither a JSON array nor JSON Lines ({exc})") from exc
    if isinstance(data, list):
        return data
    if isinstance(data, dict):  # a single JSON Lines row
        return [data]
    raise ValueError(f"{p}: expected a JSON array or JSON Lines of objects")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sample_indices(n: int, limit: int | None, seed: int, split: str) -> list[int]:
    """Row indices evaluated for one split: all ``range(n)`` when ``limit`` is ``None`` or
    ≥ n, else a sorted uniform sample without replacement of ``limit`` rows drawn with
    ``random.Random(f"{seed}:{split}")`` (seeded per split, so limits are reproducible and
    splits are sampled independently). Raises ``ValueError`` for a negative limit."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(f"{seed}:{split}").sample(range(n), limit))


def split_record(path: Path, population: int, indices: list[int]) -> dict:
    """Profile entry of one split: file name, sha256, population, evaluated count and
    sha256 of the comma-joined evaluated indices (the indices themselves when ≤ 100)."""
    joined = ",".join(map(str, indices))
    rec = {
        "file": path.name,
        "sha256": file_sha256(path),
        "population": population,
        "evaluated": len(indices),
        "indices_sha256": hashlib.sha256(joined.encode("ascii")).hexdigest(),
    }
    if len(indices) <= 100:
        rec["indices"] = list(indices)
    return rec
