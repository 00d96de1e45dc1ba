import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from evaluation.mia import mia_auc, privleak
from evaluation.stats import MetricValue, bootstrap_mean_ci, rank_auc


def test_memorised_forget_set_gives_zero():
    # forget scores all LOWER than holdout scores (memorised) -> P(s_h < s_f) = 0
    m = mia_auc([0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 1.1, 1.2, 1.3, 1.4])
    assert m.status == "ok" and m.value == 0.0
    assert m.n == {"forget": 5, "holdout": 5}
    assert m.ci95 == (0.0, 0.0)


def test_over_unlearning_gives_one():
    assert mia_auc([2, 3, 4, 5, 6], [0, 0.5, 1, 1.5, 1.9]).value == 1.0


def test_identical_distributions_give_half():
    m = mia_auc([1.0] * 6, [1.0] * 6)
    assert m.value == 0.5
    assert mia_auc([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]).value == pytest.approx(0.5)


def test_hand_computed_with_ties():
    # forget = 1,2,3,4,5 ; holdout = 3,3,6,7,8 ; count pairs with s_h < s_f (+1/2 for ties):
    #   h=3: f in {4,5} -> 2, f=3 tie -> 0.5  => 2.5 ; twice (two holdout 3s) => 5
    #   h=6,7,8: no forget score above -> 0
    # AUC = 5 / (5*5) = 0.2
    m = mia_auc([1, 2, 3, 4, 5], [3, 3, 6, 7, 8])
    assert m.value == pytest.approx(0.2)
    assert rank_auc(np.array([1, 2, 3, 4, 5]), np.array([3, 3, 6, 7, 8])) == pytest.approx(0.2)
    lo, hi = m.ci95
    assert 0.0 <= lo <= 0.2 <= hi <= 1.0


def test_auc_ties_count_half_small_hand_input():
    # forget = 1,1,2 ; holdout = 1,2,2. Pairs (h, f) with s_h < s_f count 1, ties 1/2:
    #   f=1 (twice): h=1 tie -> 0.5, h=2 never below -> 0    => 0.5 each, 1.0 together
    #   f=2: h=1 below -> 1, h=2 ties (twice) -> 0.5 + 0.5   => 2.0
    # AUC = 3 / 9 = 1/3
    m = mia_auc([1, 1, 2], [1, 2, 2], min_size=1, n_bootstrap=0)
    assert m.value == pytest.approx(1 / 3) and m.ci95 is None
    assert rank_auc(np.array([1, 1, 2]), np.array([1, 2, 2])) == pytest.approx(1 / 3)


def test_rank_auc_matches_sklearn():
    rng = np.random.default_rng(3)
    f, h = rng.integers(0, 5, 30).astype(float), rng.integers(0, 5, 25).astype(float)
    sk = roc_auc_score(np.r_[np.ones(30), np.zeros(25)], np.r_[f, h])
    assert rank_auc(f, h) == pytest.approx(sk)
    assert mia_auc(f, h).value == pytest.approx(sk)


@pytest.mark.parametrize(
    "forget, holdout, needle",
    [
        ([], [1, 2, 3, 4, 5], "empty forget"),
        ([1, 2, 3, 4, 5], [], "empty holdout"),
        ([], [], "empty forget and holdout"),
        ([1, 2, 3], [1, 2, 3, 4, 5], "minimum size 5"),
        ([1, 2, 3, 4, float("nan")], [1, 2, 3, 4, 5], "non-finite"),
    ],
)
def test_undefined_cases(forget, holdout, needle):
    m = mia_auc(forget, holdout)
    assert m.status == "undefined" and m.value is None and m.ci95 is None
    assert needle in m.reason


def test_overlap_is_undefined_and_min_size_configurable():
    m = mia_auc(
        [1, 2, 3], [4, 5, 6], min_size=3, forget_keys=["a", "b", "c"], holdout_keys=["c", "d", "e"]
    )
    assert m.status == "undefined" and "overlap" in m.reason
    ok = mia_auc(
        [1, 2, 3], [4, 5, 6], min_size=3, forget_keys=["a", "b", "c"], holdout_keys=["d", "e", "f"]
    )
    assert ok.status == "ok" and ok.value == 0.0


def test_bootstrap_is_seeded():
    a = mia_auc(np.arange(10.0), np.arange(10.0) + 3, seed=7)
    b = mia_auc(np.arange(10.0), np.arange(10.0) + 3, seed=7)
    assert a == b


def test_privleak_values():
    assert privleak(0.3, 0.5) == pytest.approx(-40.0)
    assert privleak(0.55, 0.5) == pytest.approx(10.0)
    assert privleak(0.42, 0.4) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        privleak(0.5, 0.0)
    with pytest.raises(ValueError):
        privleak(float("nan"), 0.5)


def test_metric_value_roundtrip_and_mean_ci():
    m = bootstrap_mean_ci([0.0, 1.0, 0.5, 0.5], n_resamples=200, seed=0, scale=100)
    assert m.value == pytest.approx(50.0) and m.n == 4
    assert 0.0 <= m.ci95[0] <= 50.0 <= m.ci95[1] <= 100.0
    d = m.to_dict()
    assert set(d) == {"value", "ci95", "n", "status", "reason", "details"}
    assert MetricValue.from_dict(d) == m
    u = bootstrap_mean_ci([])
    assert u.status == "undefined" and u.reason
