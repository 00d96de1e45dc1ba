"""A RESTOR report (:func:`evaluation.restor_runner.run_restor`) as an attachment of a
certificate's evaluation: the method's knowledge-recovery numbers, the retrain row they compare
with, and the figure (PNG, base64, with its sha256) — inside the signed payload, so the figure
cannot be swapped. The block says plainly that RESTOR is a method-level benchmark on a
corruption set-up, not a measurement on the request's forget set, and that the judge is a
normalised-string judge (no LLM judge offline). No Django.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from .restor import JUDGE_STATEMENT, SOURCE, digest

__all__ = ["MAX_FIGURE_BYTES", "SCOPE_STATEMENT", "restor_attachment", "restor_attachment_from_file"]

#: Largest figure embedded in a certificate (bytes of the PNG).
MAX_FIGURE_BYTES = 512 * 1024
SCOPE_STATEMENT = (
    "RESTOR knowledge-recovery evaluation of the unlearning method on a corruption set-up (a clean model "
    "fine-tuned on documents stating wrong values for known facts, the method then unlearning those documents); "
    "it characterises the method, it was not measured on this request's forget set.")
_ROW_KEYS = ("accuracy", "recovery", "corrupted_share", "collateral")


def _row(report: dict, method: str) -> dict | None:
    for r in report.get("methods") or []:
        if r.get("method") == method:
            m = r.get("metrics") or {}
            return {"status": r.get("status"), **{k: m.get(k) for k in _ROW_KEYS}}
    return None


def restor_attachment(report: dict, figure: bytes, method: str) -> dict:
    """Certificate block for ``method`` from a RESTOR ``report`` and its ``figure`` PNG bytes.

    Returns ``{"kind": "evaluation_attachment/restor", "source", "scope", "judge",
    "profile_sha256", "profile", "n_facts", "n_lost", "clean", "corrupted", "method",
    "method_metrics" (``None`` when the report has no row for ``method``, with ``note``),
    "retrain_metrics", "figure": {"media_type", "sha256", "bytes", "data_base64"}}``.

    Raises:
        ValueError: the report is not a RESTOR report, or the figure is not a PNG or is larger
            than :data:`MAX_FIGURE_BYTES`.
    """
    prof = report.get("profile") or {}
    if prof.get("name") != "restor" or "models" not in report:
        raise ValueError("not a RESTOR report (profile name is not 'restor')")
    if not figure.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("the RESTOR figure is not a PNG file")
    if len(figure) > MAX_FIGURE_BYTES:
        raise ValueError(f"the RESTOR figure is {len(figure)} bytes; at most {MAX_FIGURE_BYTES} are embedded")
    models = report["models"]
    row = _row(report, method)
    block = {
        "kind": "evaluation_attachment/restor", "source": SOURCE, "scope": SCOPE_STATEMENT,
        "judge": JUDGE_STATEMENT, "profile_sha256": digest(prof),
        "profile": {k: prof.get(k) for k in ("preset", "fact_source", "n_facts", "templates", "seed",
                                             "max_new_tokens", "methods")},
        "n_facts": len(report.get("facts") or []), "n_lost": len(models.get("lost") or []),
        "clean": {"accuracy": models.get("clean", {}).get("accuracy")},
        "corrupted": {k: models.get("corrupted", {}).get(k) for k in ("accuracy", "corrupted_share")},
        "method": method, "method_metrics": row, "retrain_metrics": _row(report, "retrain"),
        "figure": {"media_type": "image/png", "sha256": hashlib.sha256(figure).hexdigest(), "bytes": len(figure),
                   "data_base64": base64.b64encode(figure).decode("ascii")},
    }
    if row is None:
        block["note"] = f"the RESTOR report did not evaluate method {method!r}"
    return block


def restor_attachment_from_file(report_path: str | Path, method: str) -> dict:
    """:func:`restor_attachment` from a report JSON written by ``run_restor(out=...)`` and the
    figure it names (``report["figure"]["file"]``, next to it). Raises FileNotFoundError for a
    missing file, ValueError for a bad report or figure."""
    p = Path(report_path)
    try:
        report = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not JSON: {exc}") from exc
    name = (report.get("figure") or {}).get("file")
    if not name:
        raise ValueError(f"{p} names no figure (written without out=?)")
    return restor_attachment(report, (p.parent / Path(name).name).read_bytes(), method)
