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
            "privleak_status": _privleak_status(report) if report else "",
            "method": version.produced_by.method if version.produced_by_id else "",
        })
    return points


def _privleak_status(report: EvaluationReport) -> str:
    """The PrivLeak check's three-valued status in the report's verdicts ("" when none)."""
    for check in (report.verdicts or {}).get("checks") or []:
        if isinstance(check, dict) and check.get("name") == "privleak":
            return str(check.get("status") or ("pass" if check.get("passed") else "fail"))
    return ""


def utility_tolerance(points: list[dict], fraction: float | None = None) -> float | None:
    """The lowest utility a version may have and still pass: ``fraction`` (the verdicts'
    ``utility_fraction``, 0.9 by default, DESIGN §7) × the first version's KnowMem retain."""
    if fraction is None:
        from evaluation.verdicts import Thresholds

        fraction = Thresholds().utility_fraction
    first = next((p["utility"] for p in points if p["utility"] is not None), None)
    return None if first is None else first * fraction


def sustainability_png(points: list[dict], *, title: str = "") -> bytes:
    """PNG of :func:`sustainability_figure`."""
    fig = sustainability_figure(points, title=title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def sustainability_figure(points: list[dict], *, title: str = ""):
    """Two-panel matplotlib Figure (Agg canvas): utility and PrivLeak against the version number.

    Honest scales (issue 21 item 13): the utility axis starts at 0 (ROUGE-L ×100 runs to 100) and
    shows the tolerance (``utility_tolerance``: 90 % of the first version's); the PrivLeak panel
    shows the ±5 pass band. A PrivLeak check that was inconclusive is drawn hollow and labelled.
    """
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
        shown = [p for p in points if p[key] is not None]
        if shown:
            ax.plot([p["sequence"] for p in shown], [p[key] for p in shown], marker="o", color=colour)
        else:
            ax.text(0.5, 0.5, _("no evaluation yet"), ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(_("published version n"))
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_xticks(seqs or [0])
        ax.grid(alpha=0.3)
    top = max([100.0] + [p["utility"] for p in points if p["utility"] is not None])
    ax_u.set_ylim(0, top * 1.02)
    tolerance = utility_tolerance(points)
    if tolerance is not None:
        ax_u.axhspan(tolerance, top * 1.02, color="#2a8a2a", alpha=0.10,
                     label=_("within tolerance (≥ 90 %% of v%(n)s)") % {"n": seqs[0]})
        ax_u.axhline(tolerance, color="#2a8a2a", linewidth=0.8, linestyle="--")
        ax_u.legend(fontsize=7, loc="lower left")
    ax_p.axhspan(-5, 5, color="#2a8a2a", alpha=0.12, label=_("pass band ±5"))
    ax_p.axhline(0, color="#555", linewidth=0.8)
    inconclusive = [p for p in points if p["privleak"] is not None and p.get("privleak_status") == "inconclusive"]
    if inconclusive:
        ax_p.plot([p["sequence"] for p in inconclusive], [p["privleak"] for p in inconclusive], linestyle="none",
                  marker="o", markersize=11, markerfacecolor="white", markeredgecolor="#8a5a00", markeredgewidth=2,
                  label=_("inconclusive (CI overlaps the band)"))
        for p in inconclusive:
            ax_p.annotate("?", (p["sequence"], p["privleak"]), ha="center", va="center", fontsize=8,
                          color="#8a5a00", fontweight="bold")
    ax_p.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
