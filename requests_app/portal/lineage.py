"""Sustainability of a model lineage (DESIGN §7): utility and PrivLeak after each published version."""
from __future__ import annotations

import io
import math

from django.utils.translation import gettext as _

from ..models import EvaluationReport, ModelVersion


def _value(metrics: dict, name: str):
    v = (metrics or {}).get(name) or {}
    value = v.get("value") if isinstance(v, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _privleak(report: EvaluationReport) -> float | None:
    """PrivLeak of the version this report measured.

    An ``unlearned`` report carries it in its verdicts. For an ``original`` report it is computed
    from its Min-K% AUC against the reference AUC that the same job's verdicts used.
    """
    pl = (report.verdicts or {}).get("privleak") or {}
    if isinstance(pl.get("value"), (int, float)):
        return float(pl["value"])
    auc = _value(report.metrics, "mink_auc")
    if auc is None or report.job_id is None:
        return None
    sibling = EvaluationReport.objects.filter(job_id=report.job_id, role="unlearned").first()
    ref = ((sibling.verdicts or {}).get("privleak") or {}).get("reference") if sibling else None
    if not isinstance(ref, (int, float)) or not ref:
        return None
    return (auc - float(ref)) / float(ref) * 100.0


def lineage_points(model) -> list[dict]:
    """One point per published version, in sequence order: utility (KnowMem on retain) and PrivLeak."""
    points = []
    versions = ModelVersion.objects.filter(model=model, role=ModelVersion.ROLE_PUBLISHED).order_by("sequence")
    for version in versions:
        reports = list(EvaluationReport.objects.filter(model_version=version).order_by("-id"))
        report = next((r for r in reports if r.role == "unlearned"), None) or next(
            (r for r in reports if r.role == "original"), None)
        points.append({
            "sequence": version.sequence,
            "version": version,
            "utility": _value(report.metrics, "knowmem_retain") if report else None,
            "privleak": _privleak(report) if report else None,
            "method": version.produced_by.method if version.produced_by_id else "",
        })
    return points


def sustainability_png(points: list[dict], *, title: str = "") -> bytes:
    """Two-panel PNG (matplotlib, Agg canvas): utility and PrivLeak against the version number."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax_u, ax_p = fig.subplots(1, 2)
    seqs = [p["sequence"] for p in points]
    for ax, key, ylabel, colour in (
        (ax_u, "utility", _("utility: KnowMem retain (ROUGE-L ×100)"), "#1f5fa8"),
        (ax_p, "privleak", _("PrivLeak (%)"), "#a8321f"),
    ):
        xs = [s for s, p in zip(seqs, points, strict=True) if p[key] is not None]
        ys = [p[key] for p in points if p[key] is not None]
        if xs:
            ax.plot(xs, ys, marker="o", color=colour)
        else:
            ax.text(0.5, 0.5, _("no evaluation yet"), ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(_("published version n"))
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_xticks(seqs or [0])
        ax.grid(alpha=0.3)
    ax_p.axhspan(-5, 5, color="#2a8a2a", alpha=0.12, label=_("pass band ±5"))
    ax_p.axhline(0, color="#555", linewidth=0.8)
    ax_p.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
