"""The ``classifier`` evaluation profile (issue 19): SVC-MIA features, intervals, verdicts."""
import math

import numpy as np
import pytest

from evaluation.profiles.classifier import proportion_metric, svc_mia, svc_mia_features
from evaluation.profiles.classifier_verdicts import compute_classifier_verdicts


def test_svc_mia_features_by_hand():
    f = svc_mia_features([[0.5, 0.25, 0.25]], [0])
    assert f["confidence"][0] == pytest.approx(0.5)
    assert f["entropy"][0] == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    # modified entropy: −(1 − p_y) log p_y − Σ_{j≠y} p_j log(1 − p_j)
    assert f["m_entropy"][0] == pytest.approx(-0.5 * math.log(0.5) - 2 * 0.25 * math.log(0.75))


def test_svc_mia_calls_low_confidence_examples_non_members():
    member = {k: np.full(50, v) for k, v in (("confidence", 0.99), ("entropy", 0.05), ("m_entropy", 0.05))}
    non = {k: np.full(50, v) for k, v in (("confidence", 0.4), ("entropy", 1.5), ("m_entropy", 1.5))}
    target = {k: np.array([member[k][0], non[k][0]]) for k in member}
    called = svc_mia(member, non, target)
    assert called["confidence"].tolist() == [0.0, 1.0]


def test_proportion_metric_clopper_pearson():
    m = proportion_metric([1.0])
    assert m["value"] == 100.0 and m["ci95"][0] == pytest.approx(2.5) and m["ci95"][1] == 100.0
    assert proportion_metric([0.0] * 10)["ci95"][1] == pytest.approx(100 * (1 - 0.025 ** 0.1))


def _rep(ua, ra, ta, mia, n_f=10):
    def m(v, n):
        return {"value": v, "ci95": [max(0, v - 30), min(100, v + 30)] if n < 50 else [v - 1, v + 1], "n": n,
                "status": "ok"}
    return {"metrics": {"ua": m(ua, n_f), "ra": m(ra, 500), "ta": m(ta, 357), "mia_efficacy": m(mia, n_f),
                        "mia_test_nonmember": m(2.0, 357)}, "n": {"forget": n_f}}


def test_verdicts_pass_fail_and_average_gap():
    orig, retr = _rep(0, 100, 98.6, 0), _rep(0, 100, 98.0, 10)
    v = compute_classifier_verdicts(_rep(0, 100, 98.3, 10), orig, retr)
    assert v["passed"] and v["gaps"]["average"] == pytest.approx(0.3 / 4)
    assert {c["name"] for c in v["checks"]} == {"ua_gap", "mia_gap", "ra_utility", "ta_utility", "average_gap"}
    bad = compute_classifier_verdicts(_rep(0, 90, 87.0, 0), orig, retr)
    assert not bad["passed"] and {c["name"] for c in bad["checks"] if not c["passed"]} >= {"ra_utility", "ta_utility"}


def test_large_forget_gap_with_wide_ci_is_inconclusive_not_fail():
    v = compute_classifier_verdicts(_rep(0, 100, 98.6, 40), _rep(0, 100, 98.6, 0), _rep(0, 100, 98.6, 0))
    mia = next(c for c in v["checks"] if c["name"] == "mia_gap")
    assert mia["status"] == "inconclusive" and mia["passed"]
    assert any("inconclusive" in s for s in v["not_verified"])


def test_without_retrained_reference_uses_test_error_flagged():
    v = compute_classifier_verdicts(_rep(1, 100, 98.6, 2), _rep(0, 100, 98.6, 0), None)
    assert v["reference_type"] == "test_error" and "average_gap" not in {c["name"] for c in v["checks"]}
    assert any("No exact retrained reference" in s for s in v["not_verified"])
