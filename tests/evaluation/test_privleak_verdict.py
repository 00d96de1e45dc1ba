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


def test_several_retrains_mean_reference_and_seed_spread():
    """K = 3 retrains: AUC_ref is the mean of their AUCs and each retrain's leave-one-out PrivLeak
    is reported (retrain AUCs a, b, c: (a − (b + c)/2) / ((b + c)/2) × 100)."""
    rng = np.random.default_rng(4)
    h = rng.normal(size=40)
    fs = [rng.normal(size=20) + s for s in (0.0, 0.3, -0.3)]
    rs = [_report(f, h, _auc(f, h)) for f in fs]
    aucs = [r["metrics"]["mink_auc"]["value"] for r in rs]
    v = compute_verdicts(rs[0], rs[0], rs[0], reference_auc=None, retrained_others=rs[1:])
    pl = v["privleak"]
    assert pl["reference"] == sum(aucs) / 3 and pl["retrain_aucs"] == aucs
    a, b, c = aucs
    assert pl["retrain_seed_spread"][0] == round((a - (b + c) / 2) / ((b + c) / 2) * 100, 3)
    assert "3 exact retrains" in _privleak_check(v)["detail"]


def test_an_exact_retrain_with_another_seed_is_not_failed_against_three_retrains():
    """Calibration of the check. Synthetic retrains: per-text noise plus a per-seed shift of the
    forget scores (how the demo model's retrains differ: Min-K% AUC 0.315 vs 0.220 for seeds 0, 1).
    Of 40 further exact retrains, none fails against K = 3 retrains (prediction interval), while
    against the first retrain alone 23 of the same 40 'fail'; a memorising model still fails."""
    rng = np.random.default_rng(5)
    h0, f0 = rng.normal(size=40), rng.normal(size=20) - 0.6

    def retrain(seed):
        g = np.random.default_rng(100 + seed)
        f, h = f0 + g.normal(scale=0.3, size=20) + g.normal(scale=0.5), h0 + g.normal(scale=0.3, size=40)
        return _report(f, h, _auc(f, h))

    refs = [retrain(k) for k in range(3)]
    with_k3, with_k1 = [], []
    for k in range(3, 43):
        other = retrain(k)
        with_k3.append(_privleak_check(compute_verdicts(other, refs[0], refs[0], reference_auc=None,
                                                        retrained_others=refs[1:]))["status"])
        with_k1.append(_privleak_check(compute_verdicts(other, refs[0], refs[0], reference_auc=None))["status"])
    assert with_k3.count("fail") == 0
    assert with_k1.count("fail") == 23
    f_m = f0 - 10.0
    memorised = _report(f_m, h0, _auc(f_m, h0))
    c = _privleak_check(compute_verdicts(memorised, refs[0], refs[0], reference_auc=None, retrained_others=refs[1:]))
    assert c["status"] == "fail" and c["ci95"][1] < -5


def test_one_retrain_says_its_seed_variation_was_not_measured():
    rng = np.random.default_rng(7)
    f, h = rng.normal(size=20), rng.normal(size=40)
    r = _report(f, h, _auc(f, h))
    assert any("one training seed" in s for s in compute_verdicts(r, r, r, reference_auc=None)["not_verified"])
    v3 = compute_verdicts(r, r, r, reference_auc=None, retrained_others=[r, r])
    assert not any("one training seed" in s for s in v3["not_verified"])


def test_retrain_scored_on_other_texts_is_left_out_of_the_reference():
    rng = np.random.default_rng(6)
    f, h = rng.normal(size=20), rng.normal(size=40)
    r = _report(f, h, _auc(f, h))
    other = _report(f[:10], h, _auc(f[:10], h))
    v = compute_verdicts(r, r, r, reference_auc=None, retrained_others=[other])
    assert v["privleak"]["retrain_aucs"] == [r["metrics"]["mink_auc"]["value"]]
