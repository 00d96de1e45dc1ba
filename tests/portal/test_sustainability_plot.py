"""The sustainability plot does not exaggerate (issue 21 item 13): utility from 0 with the
tolerance drawn, the PrivLeak band drawn, inconclusive points marked, the values table kept."""
from __future__ import annotations

from requests_app.portal.lineage import (
    lineage_points,
    sustainability_figure,
    sustainability_png,
    utility_tolerance,
)

POINTS = [
    {"sequence": 0, "utility": 86.0, "privleak": -40.0, "privleak_status": ""},
    {"sequence": 1, "utility": 83.5, "privleak": 7.0, "privleak_status": "inconclusive"},
    {"sequence": 2, "utility": 84.1, "privleak": 2.0, "privleak_status": "pass"},
]


def test_utility_axis_starts_at_zero_with_the_tolerance_band():
    fig = sustainability_figure(POINTS)
    ax_u, ax_p = fig.axes
    assert ax_u.get_ylim()[0] == 0 and ax_u.get_ylim()[1] >= 100
    assert utility_tolerance(POINTS) == 86.0 * 0.9
    assert [line.get_ydata()[0] for line in ax_u.lines if line.get_linestyle() == "--"] == [86.0 * 0.9]
    labels = [t.get_text() for t in ax_u.get_legend().get_texts()]
    assert labels == ["within tolerance (≥ 90 % of v0)"]


def test_inconclusive_points_are_marked():
    fig = sustainability_figure(POINTS)
    ax_p = fig.axes[1]
    hollow = [line for line in ax_p.lines if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [1] and list(hollow[0].get_ydata()) == [7.0]
    assert "inconclusive (CI overlaps the band)" in [t.get_text() for t in ax_p.get_legend().get_texts()]
    assert [t.get_text() for t in ax_p.texts] == ["?"]
    assert sustainability_png(POINTS)[:4] == b"\x89PNG"


def test_lineage_points_carry_the_privleak_status(certified_lineage, client_for):
    points = lineage_points(certified_lineage["model"])
    assert [p["privleak_status"] for p in points] == ["", "pass", "pass"]
    page = client_for("auditor").get(f"/dashboard/models/{certified_lineage['model'].pk}/").content.decode()
    assert "Values in the plot" in page and "−76.0%" in page
