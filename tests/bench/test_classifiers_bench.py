"""bench/classifiers.py (issue 19): gaps to retrain, time ratios and the seed aggregate on fixed rows,
and one tiny end-to-end scenario."""
import pytest

from bench import classifiers as cb


def _row(ua, ra, ta, mia, wall, ulira=None):
    r = {"metrics": {k: {"value": v} for k, v in zip(cb.GAP_METRICS, (ua, ra, ta, mia), strict=True)},
         "wall_seconds": wall}
    if ulira is not None:
        r["ulira"] = {"value": ulira}
    return r


def test_gaps_ratios_and_aggregate_by_hand():
    seeds = []
    for ua in (10.0, 20.0):
        rows = {"retrain": _row(0.0, 100.0, 98.0, 4.0, 2.0, 50.0), "ft": _row(ua, 98.0, 97.0, 0.0, 0.5, 60.0)}
        cb._gaps_and_ratios(rows)
        seeds.append({"scenarios": {"digits_subject": {"rows": rows}}})
    assert seeds[0]["scenarios"]["digits_subject"]["rows"]["ft"]["average_gap"] == pytest.approx((10 + 2 + 1 + 4) / 4)
    assert seeds[0]["scenarios"]["digits_subject"]["rows"]["ft"]["time_ratio"] == pytest.approx(0.25)
    agg = cb.aggregate(seeds)["digits_subject"]["ft"]
    assert agg["ua"] == pytest.approx([15.0, 5.0]) and agg["ulira"] == pytest.approx([60.0, 0.0])
    assert agg["average_gap"][0] == pytest.approx(((10 + 7) / 4 + (20 + 7) / 4) / 2)


def test_one_tiny_scenario_end_to_end(tmp_path):
    world = cb.World("breast_cancer", 0, tmp_path)
    doc = cb.run_scenario("bc_subjects", world, 2, methods=("retrain", "ft", "ga"))
    rows = doc["rows"]
    assert set(rows) == {"retrain", "ft", "ga"} and rows["retrain"]["average_gap"] == 0.0
    assert rows["ft"]["n_forget"] == 10 and rows["ft"]["ulira"]["n"] == 20
    assert 0.0 <= rows["ga"]["metrics"]["ua"]["value"] <= 100.0
