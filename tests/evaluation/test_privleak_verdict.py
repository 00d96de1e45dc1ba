"""The three-valued PrivLeak check with a paired bootstrap CI."""
import numpy as np

from evaluation.verdicts import Thresholds, compute_verdicts


def _report(forget, holdout, auc, knowmem_r=80.0):
    metric = lambda v: {"value": v, "ci95": [v, v], "n": 20, "status": "ok", "reason": None, "details": {}}  # noqa: E731
    return {
        "metrics": {
            "verbmem_forget": metric(10.0), "knowmem_forget": metric(10.0), "knowmem_retain": metric(knowmem_r),
            "mink_auc": {"value": auc, "ci95": [max(0, auc - .1), min(1, auc + .1)],
                         "n": {"forget": len(forget), "holdout": len(holdout)}, "status": "ok", "reason": None,
                         "details": {"scores": {"forget": list(forget), "holdout": list(holdout)}}},
        },
        "degenerate": {"all": {"n": 40, "empty": 0, "repeated": 0, "fraction": 0.0}},
    }


def _auc(f, h):
    from evaluation.stats import rank_auc

    return float(rank_auc(np.asarray(f), np.asarray(h)))


def _privleak_check(v):
    return next(c for c in v["checks"] if c["name"] == "privleak")


def test_identical_models_pass_with_zero():
    rng = np.random.default_rng(1)
    f, h = rng.normal(size=20), rng.normal(size=40)
    r = _report(f, h, _auc(f, h))
    v = compute_verdicts(_report(f, h, _auc(f, h)), r, r, reference_auc=None)
    c = _privleak_check(v)
    assert c["value"] == 0.0 and c["status"] == "pass" and c["ci95"] == [0.0, 0.0]
    assert v["privleak"]["reference_type"] == "retrain"


def test_memorising_model_fails_outside_the_band():
    rng = np.random.default_rng(2)
    h = rng.normal(size=40)
    f_u = rng.normal(size=20) - 10.0  # forget texts far more likely: still memorised, AUC = 0
    f_r = rng.normal(size=20)
    u, r = _report(f_u, h, _auc(f_u, h)), _report(f_r, h, _auc(f_r, h))
    c = _privleak_check(compute_verdicts(u, r, r, reference_auc=None))
    assert c["value"] == -100.0
    assert c["status"] == "fail" and c["passed"] is False and c["ci95"][1] < -5


def test_small_noisy_difference_is_inconclusive_and_listed():
    rng = np.random.default_rng(3)
    h_r, f_r = rng.normal(size=40), rng.normal(size=20)
    f_u = f_r + rng.normal(scale=0.6, size=20)  # another model of the same non-members: noisy, no leak
    h_u = h_r + rng.normal(scale=0.6, size=40)
    u, r = _report(f_u, h_u, _auc(f_u, h_u)), _report(f_r, h_r, _auc(f_r, h_r))
    v = compute_verdicts(u, r, r, reference_auc=None)
    c = _privleak_check(v)
    assert abs(c["value"]) > 5
    assert c["ci95"][0] < 5 and c["ci95"][1] > -5
    assert c["status"] == "inconclusive" and c["passed"] is True
    assert any("inconclusive" in s for s in v["not_verified"])
    blocking = compute_verdicts(u, r, r, reference_auc=None, thresholds=Thresholds(privleak_inconclusive_blocks=True))
    assert _privleak_check(blocking)["passed"] is False


def test_retrained_auc_of_zero_does_not_crash_and_is_named():
    """Regression (SmolLM2 demo): the retrained model's Min-K% AUC was 0 on 5 forget vs 20 holdout
    texts; the job died with "reference_auc must be in (0, 1]". The relative PrivLeak is undefined
    there: the ideal reference 0.5 is used, flagged, the check is inconclusive (a retrained model at
    AUC 0 shows that a gap to 0.5 is not evidence of leakage) and the certificate says so."""
    f, h = [0.0] * 5, [1.0] * 20  # every forget score below every holdout score: AUC = 0
    r = _report(f, h, _auc(f, h))
    assert r["metrics"]["mink_auc"]["value"] == 0.0
    v = compute_verdicts(r, r, r, reference_auc=None)
    c = _privleak_check(v)
    assert v["privleak"]["reference_type"] == "ideal"
    assert c["value"] == -100.0 and c["status"] == "inconclusive"  # (0 − 0.5) / 0.5 × 100
    assert any("Min-K% AUC is 0" in s for s in v["not_verified"])
    assert any("PrivLeak is inconclusive" in s for s in v["not_verified"])
