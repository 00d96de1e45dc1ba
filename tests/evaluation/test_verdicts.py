import pytest

from evaluation.verdicts import Thresholds, compute_verdicts


def metric(value, ci=None, n=40, status="ok", reason=None):
    return {"value": value, "ci95": ci, "n": n, "status": status, "reason": reason, "details": {}}


def report(verbmem, knowmem_f, knowmem_r, auc, degenerate_fraction=0.0):
    return {
        "metrics": {
            "verbmem_forget": metric(verbmem, [verbmem - 2, verbmem + 2]),
            "knowmem_forget": metric(knowmem_f),
            "knowmem_retain": metric(knowmem_r, n=200),
            "mink_auc": metric(auc, [auc - 0.05, auc + 0.05], n={"forget": 40, "holdout": 40}),
        },
        "degenerate": {
            "all": {
                "n": 100,
                "empty": int(degenerate_fraction * 100),
                "repeated": 0,
                "fraction": degenerate_fraction,
            }
        },
    }


ORIGINAL = report(90.0, 80.0, 60.0, 0.05)
RETRAINED = report(20.0, 30.0, 58.0, 0.50)


def by_name(v):
    return {c["name"]: c for c in v["checks"]}


def test_pass_against_retrained_reference():
    unlearned = report(24.0, 33.0, 56.0, 0.51)
    v = compute_verdicts(unlearned, ORIGINAL, RETRAINED, reference_auc=None)
    c = by_name(v)
    assert v["passed"] is True
    assert set(c) == {
        "verbmem_forget",
        "knowmem_forget",
        "privleak",
        "knowmem_retain",
        "no_collapse",
    }
    assert c["verbmem_forget"]["threshold"] == 25.0 and c["verbmem_forget"]["passed"]
    assert c["knowmem_forget"]["threshold"] == 35.0
    assert c["knowmem_retain"]["threshold"] == pytest.approx(54.0)
    # PrivLeak = (0.51 - 0.50) / 0.50 * 100 = 2
    assert c["privleak"]["value"] == pytest.approx(2.0)
    assert c["privleak"]["ci95"] == pytest.approx([-8.0, 12.0])
    assert v["privleak"]["reference_type"] == "retrain" and v["privleak"]["flagged"] is False
    assert v["not_verified"] and any("extraction" in s for s in v["not_verified"])
    for ch in v["checks"]:
        assert set(ch) >= {"name", "value", "ci95", "threshold", "passed", "detail"}


def test_fail_cases():
    # VerbMem too high (26 > 25), utility collapse (50 < 54), PrivLeak -40
    unlearned = report(26.0, 33.0, 50.0, 0.30, degenerate_fraction=0.5)
    v = compute_verdicts(unlearned, ORIGINAL, RETRAINED, reference_auc=None)
    c = by_name(v)
    assert v["passed"] is False
    assert not c["verbmem_forget"]["passed"] and c["verbmem_forget"]["status"] == "fail"
    assert c["knowmem_forget"]["passed"]
    assert c["privleak"]["value"] == pytest.approx(-40.0) and not c["privleak"]["passed"]
    assert not c["knowmem_retain"]["passed"]
    assert not c["no_collapse"]["passed"] and c["no_collapse"]["value"] == 0.5


def test_no_reference_uses_half_of_original_and_ideal_auc():
    unlearned = report(44.0, 41.0, 58.0, 0.52)
    v = compute_verdicts(unlearned, ORIGINAL, None, reference_auc=None)
    c = by_name(v)
    assert c["verbmem_forget"]["threshold"] == 45.0 and c["verbmem_forget"]["passed"]
    assert c["knowmem_forget"]["threshold"] == 40.0 and not c["knowmem_forget"]["passed"]
    assert v["privleak"]["reference"] == 0.5 and v["privleak"]["reference_type"] == "ideal"
    assert v["privleak"]["flagged"] is True
    assert c["privleak"]["value"] == pytest.approx(4.0)
    assert any("ideal" in s for s in v["not_verified"])
    assert any("retrained reference" in s for s in v["not_verified"])


def test_supplied_reference_auc():
    unlearned = report(10.0, 10.0, 58.0, 0.42)
    v = compute_verdicts(unlearned, ORIGINAL, None, reference_auc=0.4)
    assert v["privleak"]["reference_type"] == "supplied"
    assert by_name(v)["privleak"]["value"] == pytest.approx(5.0) and v["passed"] is True
    with pytest.raises(ValueError):
        compute_verdicts(unlearned, ORIGINAL, None, reference_auc=1.5)


def test_undefined_metric_never_passes():
    unlearned = report(10.0, 10.0, 58.0, 0.5)
    unlearned["metrics"]["mink_auc"] = metric(None, status="undefined", reason="empty holdout set")
    v = compute_verdicts(unlearned, ORIGINAL, RETRAINED, reference_auc=None)
    c = by_name(v)["privleak"]
    assert v["passed"] is False
    assert (
        c["passed"] is False and c["status"] == "undefined" and "empty holdout set" in c["detail"]
    )
    assert any("privleak" in s and "empty holdout set" in s for s in v["not_verified"])


def test_custom_thresholds():
    unlearned = report(26.0, 33.0, 56.0, 0.51)
    v = compute_verdicts(
        unlearned,
        ORIGINAL,
        RETRAINED,
        reference_auc=None,
        thresholds=Thresholds(verbmem_margin=10.0),
    )
    assert by_name(v)["verbmem_forget"]["threshold"] == 30.0 and v["passed"] is True


def test_sample_sizes_in_a_statement_are_words_not_a_dict_literal():
    """Issue 21 item 4: a certificate limitation read "n = {'forget': 20, ...}"."""
    from evaluation.verdicts import _sample_sizes

    assert _sample_sizes({"forget": 20, "holdout": 40}) == "20 forget and 40 holdout texts"
    assert _sample_sizes(20) == "n = 20"
