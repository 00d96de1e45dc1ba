"""Calibration search (issue 15 item 1): ordering, early stopping, caps, search-space checks, halves."""
from __future__ import annotations

import hashlib
import json

import pytest

from evaluation.calibration import (
    CalibrationError,
    TrialOutcome,
    calibration_method_check,
    calibration_search,
    default_search_space,
    holdout_halves,
    search_space_check,
    subjects_pick,
    trials_plan,
)


def _verdict(passed_checks: dict) -> dict:
    return {"passed": all(passed_checks.values()),
            "checks": [{"name": n, "passed": p, "status": "pass" if p else "fail", "value": 1.0, "threshold": 1.0}
                       for n, p in passed_checks.items()]}


def _stub(rule):
    """An evaluator whose verdict is ``rule(hp)`` -> dict of check name -> passed; records the calls."""
    calls = []

    def evaluate(hp, check_deadline):
        calls.append(dict(hp))
        checks = rule(hp)
        v = _verdict(checks)
        return TrialOutcome(status="passed" if v["passed"] else "failed", verdicts=v,
                            metrics={"knowmem_forget": 1.0, "knowmem_retain": 2.0}, steps=10 * hp["epochs"],
                            wall_seconds=float(hp["epochs"]))
    return evaluate, calls


def test_search_picks_the_cheapest_passing_trial_and_stops():
    space = {"lr": [1e-3, 2e-3], "epochs": [4, 1, 2]}
    plan = trials_plan(space)
    assert [p["epochs"] for p in plan] == [1, 1, 2, 2, 4, 4]  # cheapest first, grid order kept on ties
    # passes with epochs >= 2 at lr 2e-3 only (and also epochs 4 at lr 1e-3: more expensive)
    evaluate, calls = _stub(lambda hp: {"knowmem_forget": hp["epochs"] >= 2 and hp["lr"] == 2e-3 or hp["epochs"] == 4,
                                        "knowmem_retain": True})
    res = calibration_search("gd", plan, evaluate, max_trials=10)
    assert res.chosen_hyperparameters == {"lr": 2e-3, "epochs": 2}
    assert calls == [{"lr": 1e-3, "epochs": 1}, {"lr": 2e-3, "epochs": 1}, {"lr": 1e-3, "epochs": 2},
                     {"lr": 2e-3, "epochs": 2}]
    assert [t["status"] for t in res.trials] == ["failed", "failed", "failed", "passed", "skipped", "skipped"]
    assert res.stop_reason.startswith("trial 3 passed")
    doc = res.to_dict()
    assert doc["trials_run"] == 4 and doc["trials"][3]["verdict"]["passed"] is True
    assert doc["trials"][3]["steps"] == 20 and doc["trials"][3]["wall_seconds"] == 2.0
    json.dumps(doc)


def test_a_utility_failure_prunes_the_same_knobs_with_larger_budgets():
    plan = trials_plan({"lr": [1e-3, 1e-2], "epochs": [1, 2, 4]})
    # lr 1e-2 destroys utility at any budget; lr 1e-3 never forgets enough
    evaluate, calls = _stub(lambda hp: {"knowmem_forget": False, "knowmem_retain": hp["lr"] < 5e-3})
    res = calibration_search("gd", plan, evaluate, max_trials=10)
    assert res.chosen is None and res.stop_reason == "every planned trial ran; none passed"
    assert calls == [{"lr": 1e-3, "epochs": 1}, {"lr": 1e-2, "epochs": 1}, {"lr": 1e-3, "epochs": 2},
                     {"lr": 1e-3, "epochs": 4}]
    pruned = [t["hyperparameters"] for t in res.trials if t["status"] == "pruned"]
    assert pruned == [{"lr": 1e-2, "epochs": 2}, {"lr": 1e-2, "epochs": 4}]


def test_collapse_prunes_and_trial_and_time_caps_stop_the_search():
    plan = trials_plan({"lr": [1e-3, 2e-3, 3e-3], "epochs": [1, 2]})

    def collapsing(hp, check_deadline):
        return TrialOutcome(status="collapsed", reason="collapse: retain NLL blew up")
    res = calibration_search("gd", plan, collapsing, max_trials=10)
    # the first collapse prunes every trial with a learning rate and a budget at least as large: here all
    assert [t["status"] for t in res.trials] == ["collapsed"] + ["pruned"] * 5

    evaluate, calls = _stub(lambda hp: {"knowmem_forget": False})
    res = calibration_search("gd", plan, evaluate, max_trials=2)
    assert len(calls) == 2 and res.stop_reason == "trial cap of 2 reached"
    assert [t["status"] for t in res.trials].count("skipped") == 4

    now = [0.0]

    def slow(hp, check_deadline):
        now[0] += 40.0
        check_deadline()  # raises once past the cap: the trial is recorded as stopped
        return TrialOutcome(status="failed", verdicts=_verdict({"knowmem_forget": False}))
    res = calibration_search("gd", plan, slow, max_trials=10, max_seconds=100, clock=lambda: now[0])
    assert [t["status"] for t in res.trials] == ["failed", "failed", "stopped", "skipped", "skipped", "skipped"]
    assert res.stop_reason == "wall-time cap of 100 s reached"


def test_an_evaluator_error_is_a_recorded_trial():
    def broken(hp, check_deadline):
        raise RuntimeError("disk full")
    res = calibration_search("gd", [{"lr": 1e-3, "epochs": 1}], broken)
    assert res.trials[0]["status"] == "error" and "disk full" in res.trials[0]["reason"]


def test_random_strategy_is_seeded_and_capped():
    space = {"lr": [1e-4, 2e-4, 5e-4, 1e-3], "epochs": [1, 2, 3], "beta": [0.05, 0.1]}
    a = trials_plan(space, strategy="random", max_trials=5, seed=3)
    assert a == trials_plan(space, strategy="random", max_trials=5, seed=3) and len(a) == 5
    assert [p["epochs"] for p in a] == sorted(p["epochs"] for p in a)


@pytest.mark.parametrize("method, needle", [
    ("nope", "unknown method 'nope'"), ("eco", "does not change the model's weights"),
    ("retrain", "nothing to calibrate: 'retrain' is the exact reference"),
    ("dp2", "nothing to calibrate: 'dp2' is certified by its DP guarantee")])
def test_methods_that_cannot_be_calibrated_say_why(method, needle):
    with pytest.raises(CalibrationError, match=needle):
        calibration_method_check(method)


def test_search_space_outside_bounds_or_unknown_knobs_is_refused():
    assert search_space_check("npo_gd", {"lr": [2e-3, 1e-3, 1e-3], "epochs": 3}) == {"lr": [1e-3, 2e-3],
                                                                                      "epochs": [3]}
    for space, needle in [({"lr": [2.0]}, r"outside the allowed range \[0, 1\]"),
                          ({"epochs": [0]}, "outside the allowed range"), ({"epochs": [1.5]}, "must be an integer"),
                          ({"beta": [1e9]}, "outside"), ({"dropout": [0.1]}, "not a calibration knob"),
                          ({"lr": []}, "1 to 32 values"), ({"lr": ["x"]}, "not a finite number"), ({}, "non-empty")]:
        with pytest.raises(CalibrationError, match=needle):
            search_space_check("npo_gd", space)


def test_default_space_stays_in_bounds_and_includes_muse_alpha():
    space = default_search_space("task_vector", {"lr": 1e-3, "epochs": 10, "alpha": 1.0})
    assert space == {"lr": [2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3], "epochs": [3, 5, 10], "alpha": [1.0, 2.0, 5.0]}
    assert default_search_space("npo_gd", {"lr": 0.8, "epochs": 1, "beta": 0.1}) == {
        "lr": [0.2, 0.4, 0.8, 1.0], "epochs": [1], "beta": [0.05, 0.1, 0.2]}  # clipped to BOUNDS, deduplicated
    # l1_sparse keeps at least one epoch with γ > 0 before its zero tail
    assert default_search_space("l1_sparse", {"lr": 1e-3, "epochs": 2, "gamma": 1.0, "zero_tail_epochs": 1})[
        "epochs"] == [2]


def test_holdout_halves_are_disjoint_deterministic_and_cover_the_holdout():
    items = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(41)]
    cal, cert = holdout_halves(items, key=lambda s: s)
    assert len(cal) == 20 and len(cert) == 21 and not set(cal) & set(cert) and set(cal) | set(cert) == set(items)
    assert holdout_halves(list(reversed(items)), key=lambda s: s) == (cal, cert)  # independent of input order
    assert holdout_halves([], key=str) == ([], [])
    with pytest.raises(ValueError, match="distinct"):
        holdout_halves(["a", "a"], key=str)


def test_subjects_pick_is_deterministic():
    keys = {f"s{i}": f"digest-{i}" for i in range(6)}
    picked = subjects_pick(keys, 2)
    assert picked == subjects_pick(dict(reversed(list(keys.items()))), 2) and len(set(picked)) == 2
    renamed = {f"new-{s}": d for s, d in keys.items()}  # other ids, same data: the same subjects
    assert subjects_pick(renamed, 2) == [f"new-{s}" for s in picked]
    with pytest.raises(CalibrationError, match="3 calibration subject"):
        subjects_pick({"a": "1", "b": "2"}, 3)
