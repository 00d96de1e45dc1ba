"""Calibration of an unlearning method's hyper-parameters on a calibration request (issue 15 item 1).

A *calibration request* forgets data subjects that nobody asked to erase; its trials are judged by
the same verdict code as a real request (:func:`evaluation.verdicts.compute_verdicts`) on the
*calibration half* of the holdout (:func:`holdout_halves`), so a real request's certification (on
the other half) never tunes on its own certification metrics.

Search (:func:`calibration_search`): a bounded grid (or a seeded random subset of it) over the
method's main knobs (:data:`KNOBS`; values inside :data:`unlearning_engine.hparams.BOUNDS`), capped
by ``max_trials`` and ``max_seconds``. Early-stopping rules (the "clearly failing / cheaper
passing" rule of the issue, written down here on purpose):

1. **Cheapest first.** Trials run in ascending estimated cost (:func:`estimated_cost`: the sum of
   the budget knobs ``epochs``, ``reinforce_epochs``, ``steps``, ``max_steps``; ties keep the
   grid order). The first trial that passes every check ends the search: no later trial can be a
   cheaper passing one. It is the chosen trial.
2. **Clearly failing.** A trial that collapsed (``CollapseError`` of the engine) or that failed
   the utility (``knowmem_retain``) or collapse (``no_collapse``) check *prunes* every remaining
   trial with the same other knobs (β, α, γ, …), a learning rate at least as large and a budget at
   least as large: more or larger steps of the same objective only move the model further from
   the original (the assumption is written into every report).
3. **Caps.** No trial starts after ``max_trials`` trials ran or ``max_seconds`` of wall time
   passed; a trial still running when ``max_seconds`` is reached is stopped at its next progress
   report (:class:`CalibrationTimeout`) and recorded as ``stopped``.

No Django.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unlearning_engine.hparams import BOUNDS

__all__ = ["KNOBS", "BUDGET_KNOBS", "NOT_CALIBRATED", "HOLDOUT_SPLIT_RULE", "CalibrationError",
           "CalibrationTimeout", "EARLY_STOPPING_RULES", "TrialOutcome", "CalibrationResult", "holdout_halves", "calibration_method_check",
           "default_search_space", "search_space_check", "trials_plan", "estimated_cost", "calibration_search",
           "subjects_pick"]

#: Main knobs of each calibratable method (DESIGN §5): the learning rate, the step budget and the
#: method's own coefficient (NPO's β: Zhang et al. 2024, arXiv 2404.05868 §3; task-vector α:
#: Ilharco et al. 2023, arXiv 2212.04089 §3; WHP's α: Eldan & Russinovich 2023, arXiv 2310.02238;
#: ℓ1-sparse γ: Jia et al. 2023, arXiv 2304.04934; GD/KL retain weights).
KNOBS: dict[str, tuple[str, ...]] = {
    "ga": ("lr", "epochs"),
    "gd": ("lr", "epochs", "retain_weight"),
    "kl": ("lr", "epochs", "kl_weight"),
    "npo": ("lr", "epochs", "beta"),
    "npo_gd": ("lr", "epochs", "beta"),
    "npo_kl": ("lr", "epochs", "beta"),
    "task_vector": ("lr", "epochs", "alpha"),
    "whp": ("lr", "epochs", "alpha"),
    "l1_sparse": ("lr", "epochs", "gamma"),
}
#: Knobs that set how many optimizer steps a trial takes (its cost).
BUDGET_KNOBS = ("epochs", "reinforce_epochs", "steps", "max_steps")
#: Methods with nothing to calibrate, and why (the API answers 400 with this text).
NOT_CALIBRATED: dict[str, str] = {
    "retrain": ("'retrain' is the exact reference (the training recipe on D_r from the pre-trained base): its "
                "settings are the model's training recipe, and the verdict compares other methods against it"),
    "dp2": ("'dp2' is certified by its DP guarantee (fine-tuning the DP base on D_r, DESIGN §6); its budget is "
            "part of that recipe and is not tuned against membership metrics"),
}
#: The rule that splits a corpus's holdout into calibration and certification halves.
HOLDOUT_SPLIT_RULE = ("holdout-half/1: records ordered by sha256('holdout-half/1:' + record sha256); positions "
                      "0, 2, 4, ... are the certification half, 1, 3, 5, ... the calibration half")
_SPLIT_SALT = "holdout-half/1:"
#: The search's stopping rules as recorded in every calibration report (see the module docstring).
EARLY_STOPPING_RULES = (
    "1. cheapest first: trials run in ascending estimated cost (sum of epochs, reinforce_epochs, steps); the "
    "first trial that passes every verdict check ends the search and is chosen. "
    "2. clearly failing: a collapsed trial, or one failing knowmem_retain or no_collapse, prunes every remaining "
    "trial with the same other knobs (beta, alpha, gamma, ...), a learning rate and a budget at least as large. "
    "3. caps: no trial starts after max_trials trials or max_seconds; a trial running at max_seconds is stopped "
    "at its next progress report.")


class CalibrationError(ValueError):
    """A calibration that cannot run (bad method, search space or calibration request)."""


class CalibrationTimeout(RuntimeError):
    """Raised from a trial's progress callback once the search's wall-time cap is reached."""


def holdout_halves(items: Sequence, key: Callable[[Any], str]) -> tuple[list, list]:
    """(calibration half, certification half) of a holdout (:data:`HOLDOUT_SPLIT_RULE`).

    ``key(item)`` is the record's content sha256 (hex). Deterministic, independent of the input
    order; the halves are disjoint and cover ``items`` (the certification half gets the extra
    record of an odd count). Raises ``ValueError`` when two items share a key.
    """
    keys = [str(key(it)) for it in items]
    if len(set(keys)) != len(keys):
        raise ValueError("holdout records must have distinct sha256 digests to be split")
    order = sorted(range(len(items)), key=lambda i: hashlib.sha256((_SPLIT_SALT + keys[i]).encode()).hexdigest())
    certification = [items[i] for pos, i in enumerate(order) if pos % 2 == 0]
    calibration = [items[i] for pos, i in enumerate(order) if pos % 2 == 1]
    return calibration, certification


def subjects_pick(candidates: dict[str, str], k: int) -> list[str]:
    """The ``k`` calibration subjects among ``candidates`` ({subject id: stable content key, e.g.
    the digest of the subject's records}): the first ``k`` by sha256('calibration-subjects/1:' +
    key), so the choice depends only on the data, not on ids or insertion order. Raises
    CalibrationError when fewer than ``k`` candidates."""
    pool = sorted(candidates, key=lambda s: (hashlib.sha256(f"calibration-subjects/1:{candidates[s]}".encode())
                                             .hexdigest(), s))
    if k < 1 or len(pool) < k:
        raise CalibrationError(f"{k} calibration subject(s) requested, {len(pool)} available")
    return pool[:k]


def calibration_method_check(method: str) -> None:
    """Refuse a method that cannot be calibrated.

    Raises:
        CalibrationError: unknown method; a method that does not change weights (``eco``:
            inference-time suppression, never certified as erasure); ``retrain``/``dp2``
            (:data:`NOT_CALIBRATED`); a method without declared knobs.
    """
    from unlearning_engine import available_methods
    from unlearning_engine.methods import _REGISTRY

    if method not in available_methods():
        raise CalibrationError(f"unknown method '{method}'; available: {', '.join(available_methods())}")
    if not _REGISTRY[method].changes_weights:
        raise CalibrationError(f"method '{method}' does not change the model's weights (inference-time "
                               "suppression): it never certifies an erasure, so there is nothing to calibrate")
    if method in NOT_CALIBRATED:
        raise CalibrationError(f"nothing to calibrate: {NOT_CALIBRATED[method]}")
    if method not in KNOBS:
        raise CalibrationError(f"method '{method}' declares no calibration knobs; calibratable: "
                               f"{', '.join(sorted(KNOBS))}")


def default_search_space(method: str, base: dict) -> dict[str, list]:
    """The default grid around ``base`` (the method's resolved hyper-parameters for the model):
    lr × {¼, ½, 1, 2, 4}, epochs {⌈e/4⌉, ⌈e/2⌉, e} (a calibration looks for cheaper settings than the
    preset, never dearer ones), β {0.05, 0.1, 0.2}, task-vector α {1, 2, 5} (MUSE's
    α = 5, arXiv 2407.06460 App. C), WHP α {0.5, 1, 2}, γ {0.3, 1, 3}, retain/KL weight {1, 2}.
    Values are clipped into :data:`BOUNDS`."""
    calibration_method_check(method)
    grid: dict[str, list] = {}
    for knob in KNOBS[method]:
        v = base.get(knob)
        if knob == "lr":
            vals = [v * 0.25, v * 0.5, v, v * 2.0, v * 4.0]
        elif knob == "epochs":
            floor = int(base.get("zero_tail_epochs") or 0) + 1  # l1_sparse: γ must be active for an epoch
            vals = [max(floor, math.ceil(v / 4)), max(floor, math.ceil(v / 2)), v]
        elif knob == "beta":
            vals = [0.05, 0.1, 0.2]
        elif knob == "alpha":
            vals = [1.0, 2.0, 5.0] if method == "task_vector" else [0.5, 1.0, 2.0]
        elif knob == "gamma":
            vals = [0.3, 1.0, 3.0]
        else:
            vals = [1.0, 2.0]
        lo, hi = BOUNDS.get(knob, (-math.inf, math.inf))
        vals = [min(max(x, lo), hi) for x in vals]
        grid[knob] = sorted({(int(x) if knob in BUDGET_KNOBS else float(x)) for x in vals})
    return grid


def search_space_check(method: str, space: dict) -> dict[str, list]:
    """Validate an operator's search space: ``{knob: [values]}`` (or one value) for knobs of the
    method, every value a number inside :data:`BOUNDS` (budget knobs: integers ≥ 1).

    Returns the normalised space (lists, sorted, duplicates removed).

    Raises:
        CalibrationError: not an object, unknown knob, empty list, a value not a number or
            outside its range, more than 256 grid points.
    """
    from unlearning_engine import get_method

    calibration_method_check(method)
    if not isinstance(space, dict) or not space:
        raise CalibrationError("search_space must be a non-empty object {knob: [values]}")
    allowed = set(get_method(method).defaults) & (set(KNOBS[method]) | set(BUDGET_KNOBS) | {"retain_weight",
                                                                                           "kl_weight"})
    out: dict[str, list] = {}
    for knob, values in space.items():
        if knob not in allowed:
            raise CalibrationError(f"'{knob}' is not a calibration knob of '{method}'; allowed: {sorted(allowed)}")
        values = values if isinstance(values, list) else [values]
        if not values or len(values) > 32:
            raise CalibrationError(f"search_space.{knob} must list 1 to 32 values")
        lo, hi = BOUNDS.get(knob, (0.0, math.inf))
        clean = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise CalibrationError(f"search_space.{knob}: {v!r} is not a finite number")
            if not lo <= v <= hi or (knob in ("lr", "beta") and v <= 0):
                raise CalibrationError(f"search_space.{knob}: {v!r} is outside the allowed range "
                                       f"[{lo:g}, {hi:g}] (unlearning_engine.hparams.BOUNDS)")
            if knob in BUDGET_KNOBS and int(v) != v:
                raise CalibrationError(f"search_space.{knob}: {v!r} must be an integer")
            clean.append(int(v) if knob in BUDGET_KNOBS else float(v))
        out[knob] = sorted(set(clean))
    if math.prod(len(v) for v in out.values()) > 256:
        raise CalibrationError("the search space has more than 256 grid points; narrow it")
    return out


def estimated_cost(hp: dict) -> float:
    """Cost proxy of a trial: the sum of its budget knobs (epochs, reinforce_epochs, steps)."""
    return float(sum(hp.get(k) or 0 for k in BUDGET_KNOBS))


def trials_plan(space: dict[str, list], *, strategy: str = "grid", max_trials: int = 12, seed: int = 0,
                base: dict | None = None) -> list[dict]:
    """The trials to run, cheapest first: the full grid (``strategy="grid"``) or ``max_trials``
    grid points drawn with ``random.Random(seed)`` (``"random"``). ``base`` supplies the budget of
    a trial whose space has no budget knob (for the cost order). Raises CalibrationError."""
    if strategy not in ("grid", "random"):
        raise CalibrationError("strategy must be 'grid' or 'random'")
    knobs = sorted(space)
    points = [dict(zip(knobs, combo, strict=True)) for combo in itertools.product(*(space[k] for k in knobs))]
    if strategy == "random" and len(points) > max_trials:
        points = random.Random(seed).sample(points, max_trials)
    base = base or {}
    return sorted(points, key=lambda p: estimated_cost({**base, **p}))  # stable: ties keep grid order


@dataclass
class TrialOutcome:
    """What an evaluator returns for one trial. ``status``: ``passed``, ``failed``, ``collapsed``,
    ``stopped`` (wall-time cap) or ``error``; ``verdicts``: :func:`compute_verdicts` output (None
    when the trial produced no model); ``metrics``: the headline numbers; ``reason``: why it
    failed."""

    status: str
    verdicts: dict | None = None
    metrics: dict = field(default_factory=dict)
    steps: int | None = None
    tokens: int | None = None
    wall_seconds: float = 0.0
    reason: str = ""
    evaluation_seconds: float = 0.0

    def failed_checks(self) -> list[str]:
        return [c["name"] for c in (self.verdicts or {}).get("checks", []) if not c.get("passed")]


@dataclass
class CalibrationResult:
    """Every trial (run or skipped), the chosen one and why the search stopped."""

    method: str
    trials: list[dict]
    chosen: int | None
    stop_reason: str
    wall_seconds: float
    rules: str = ""

    @property
    def chosen_hyperparameters(self) -> dict | None:
        return None if self.chosen is None else dict(self.trials[self.chosen]["hyperparameters"])

    def to_dict(self) -> dict:
        return {"method": self.method, "trials": self.trials, "chosen": self.chosen,
                "chosen_hyperparameters": self.chosen_hyperparameters, "stop_reason": self.stop_reason,
                "wall_seconds": round(self.wall_seconds, 3), "early_stopping_rules": self.rules or EARLY_STOPPING_RULES,
                "trials_run": sum(t["status"] not in ("pruned", "skipped") for t in self.trials)}


_PRUNING_CHECKS = ("knowmem_retain", "no_collapse")


def _prunes(outcome: TrialOutcome) -> bool:
    return outcome.status == "collapsed" or any(c in _PRUNING_CHECKS for c in outcome.failed_checks())


#: Knobs along which a failing trial's failure is assumed to get worse when they grow (rule 2).
_MONOTONE = (*BUDGET_KNOBS, "lr")


def _dominated(hp: dict, failing: dict) -> bool:
    """``hp`` has the failing trial's other knobs and a learning rate and budget at least as large."""
    same = all(hp.get(k) == v for k, v in failing.items() if k not in _MONOTONE)
    return same and all((hp.get(k) or 0) >= (failing.get(k) or 0) for k in _MONOTONE)


def calibration_search(method: str, plan: list[dict], evaluate: Callable[[dict, Callable[[], None]], TrialOutcome],
                       *, max_trials: int = 12, max_seconds: float = 3600.0, base: dict | None = None,
                       clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] = lambda m: None,
                       propagate: tuple[type[BaseException], ...] = ()) -> CalibrationResult:
    """Run ``plan`` (cheapest first, :func:`trials_plan`) with the rules of the module docstring.

    ``evaluate(hp, check_deadline)`` runs one trial and returns a :class:`TrialOutcome`; it should
    call ``check_deadline()`` from its training progress (raises :class:`CalibrationTimeout` past
    ``max_seconds``). An exception other than CalibrationTimeout ends that trial as ``error``,
    except those in ``propagate`` (e.g. the job was cancelled), which end the search.
    """
    start = clock()
    trials: list[dict] = []
    failing: list[dict] = []
    chosen, stop = None, "every planned trial ran"
    base = base or {}

    def check_deadline() -> None:
        if clock() - start > max_seconds:
            raise CalibrationTimeout(f"wall-time cap of {max_seconds:g} s reached")

    for i, hp in enumerate(plan):
        record = {"index": i, "hyperparameters": dict(hp), "estimated_cost": estimated_cost({**base, **hp})}
        if chosen is not None or stop.startswith(("trial cap", "wall-time")):
            trials.append({**record, "status": "skipped", "reason": stop})
            continue
        if sum(t["status"] not in ("pruned", "skipped") for t in trials) >= max_trials:
            stop = f"trial cap of {max_trials} reached"
            trials.append({**record, "status": "skipped", "reason": stop})
            continue
        if clock() - start > max_seconds:
            stop = f"wall-time cap of {max_seconds:g} s reached"
            trials.append({**record, "status": "skipped", "reason": stop})
            continue
        dom = next((f for f in failing if _dominated(hp, f)), None)
        if dom is not None:
            trials.append({**record, "status": "pruned",
                           "reason": f"same knobs as failing trial {dom} with a learning rate and budget at least "
                                     "as large"})
            continue
        t0 = clock()
        try:
            out = evaluate(dict(hp), check_deadline)
        except CalibrationTimeout as exc:
            out = TrialOutcome(status="stopped", reason=str(exc), wall_seconds=clock() - t0)
            stop = f"wall-time cap of {max_seconds:g} s reached"
        except propagate:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken trial is recorded, the search goes on
            out = TrialOutcome(status="error", reason=f"{type(exc).__name__}: {exc}", wall_seconds=clock() - t0)
        trials.append({**record, "status": out.status, "reason": out.reason, "metrics": out.metrics,
                       "verdict": None if out.verdicts is None else {
                           "passed": bool(out.verdicts.get("passed")), "failed_checks": out.failed_checks(),
                           "checks": [{k: c.get(k) for k in ("name", "value", "threshold", "status", "passed")}
                                      for c in out.verdicts.get("checks", [])]},
                       "steps": out.steps, "tokens": out.tokens, "wall_seconds": round(out.wall_seconds, 3),
                       "evaluation_seconds": round(out.evaluation_seconds, 3)})
        log(f"[calibrate {method}] trial {i} {hp}: {out.status} {out.failed_checks() or ''}")
        if out.status == "passed":
            chosen, stop = len(trials) - 1, f"trial {i} passed; every remaining trial costs at least as much"
        elif _prunes(out):
            failing.append(dict(hp))
    if chosen is None and stop == "every planned trial ran":
        stop = "every planned trial ran; none passed"
    return CalibrationResult(method=method, trials=trials, chosen=chosen, stop_reason=stop,
                             wall_seconds=clock() - start)
