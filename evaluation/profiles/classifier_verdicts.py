"""Verdicts of the ``classifier`` profile, in the same form as the LM checks
(:func:`evaluation.verdicts.compute_verdicts`: ``{"passed", "checks": [...], "thresholds",
"not_verified"}``, each check ``{name, value, ci95, threshold, comparison, passed, status, detail, n}``),
so certificates carry them unchanged.

Checks (values in percentage points; :class:`ClassifierThresholds`):

1. ``ua_gap`` — |UA_u − UA_ref| ≤ ``forget_margin``. Reference: the exact retrained model's UA on
   the same D_f (``reference_type="retrain"``); without one, the unlearned model's own test error
   100 − TA_u (what a model that never saw D_f is expected to get on it; flagged ``"test_error"``).
2. ``mia_gap`` — |MIA-Efficacy_u − MIA-Efficacy_ref| ≤ ``mia_margin``; reference the retrained
   model's MIA-Efficacy, else the share of *test* examples the same attack calls non-member
   (flagged). The attack is re-fitted on each model's outputs (Unlearn-Sparse protocol).
3. ``ra_utility`` — RA_u ≥ RA_o − ``utility_margin``; 4. ``ta_utility`` — TA_u ≥ TA_o − ``utility_margin``.
6. ``ulira`` (only when the unlearned report has ``ulira_accuracy``, :mod:`.classifier_ulira`) —
   U-LiRA accuracy ≤ 50 + ``ulira_margin`` (50 % = chance: the attack cannot tell the method's
   output from a model that never saw D_f; Hayes et al., arXiv 2403.01218 §4). Three-valued like
   the gaps: ``fail`` when the CI's lower end exceeds the threshold.
5. ``average_gap`` (only with a retrained report) — mean over UA, RA, TA, MIA-Efficacy of
   |metric_u − metric_retrained| ≤ ``average_gap_max`` (the "average gap" of Fan et al., ECCV 2024,
   and of Jia et al. 2023 Table 3).

**Deviation** (as PrivLeak in :mod:`evaluation.verdicts`): checks 1, 2 and 5 are three-valued.
``pass`` within the margin; ``fail`` when the 95 % CI of the gap lies entirely outside it (for the
average gap: when the mean of each metric's CI end nearest to a zero gap still exceeds it);
otherwise ``inconclusive`` — a forget set of one person's 10 images cannot resolve a gap of one
example (10 points). An inconclusive check passes unless ``inconclusive_blocks`` and is listed,
with its CI, among the things not verified.

``gaps`` lists metric_u − metric_retrained for every metric. An undefined metric never passes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..verdicts import _check, _metric, _ok, _undefined, _why

GAP_METRICS = ("ua", "ra", "ta", "mia_efficacy")

ULIRA_NOT_RUN = ("Membership inference was tested with the SVC attack on confidence, entropy and modified entropy "
                 "only; U-LiRA (per-example likelihood-ratio tests with shadow models) and white-box attacks were "
                 "not run.")
ULIRA_RUN = ("Membership inference was tested with the SVC attack and U-LiRA ({k} shadow models, pooled variances, "
             "one evaluated model); white-box attacks and U-LiRA with many shadow and target models were not run.")
NOT_VERIFIED: tuple[str, ...] = (
    ULIRA_NOT_RUN,
    "The forget set was the requested records only; worst-case forget sets were not evaluated.",
    "Robustness to relearning (fine-tuning the model again on related data) was not tested.",
    "Information about the data subject in retained records or in other sources is not considered "
    "forgotten and was not measured.",
)


@dataclass(frozen=True)
class ClassifierThresholds:
    """Margins in percentage points (see module docstring)."""

    forget_margin: float = 10.0
    mia_margin: float = 15.0
    utility_margin: float = 3.0
    average_gap_max: float = 5.0
    ulira_margin: float = 10.0
    inconclusive_blocks: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _value(report, name):
    m = _metric(report, name)
    return float(m["value"]) if _ok(m) else None


def _gap_check(name, label, metric, margin, unlearned, reference_value, ref_type) -> dict:
    u = _metric(unlearned, metric)
    if not _ok(u):
        return _undefined(name, "abs<=", _why(u, "unlearned model"), u)
    if reference_value is None:
        return _undefined(name, "abs<=", f"no reference value for {label}", u)
    gap = float(u["value"]) - reference_value
    ci = u.get("ci95")
    ci_gap = None if not ci else [ci[0] - reference_value, ci[1] - reference_value]
    status = _three_valued(abs(gap), None if ci_gap is None else _nearest_zero(ci_gap), margin)
    return _check(name, gap, ci_gap, margin, "abs<=", status != "fail",
                  f"|{label}(unlearned) {u['value']:.1f} - reference {reference_value:.1f}| <= {margin:g} points "
                  f"(reference: {ref_type})", n=u.get("n"), status=status)


def _nearest_zero(ci) -> float:
    """Distance from 0 to the interval ``ci`` (0 when it contains 0)."""
    lo, hi = float(ci[0]), float(ci[1])
    return 0.0 if lo <= 0.0 <= hi else min(abs(lo), abs(hi))


def _three_valued(value: float, best_case: float | None, limit: float) -> str:
    if value <= limit:
        return "pass"
    if best_case is not None and best_case <= limit:
        return "inconclusive"
    return "fail"


def _utility_check(name, label, metric, margin, unlearned, original) -> dict:
    u, o = _metric(unlearned, metric), _metric(original, metric)
    if not _ok(u):
        return _undefined(name, ">=", _why(u, "unlearned model"), u)
    if not _ok(o):
        return _undefined(name, ">=", _why(o, "original model"), u)
    thr = float(o["value"]) - margin
    return _check(name, float(u["value"]), u.get("ci95"), thr, ">=", float(u["value"]) >= thr,
                  f"{label}(unlearned) >= {label}(original) {o['value']:.1f} - {margin:g} points", n=u.get("n"))


def _ulira_check(m: dict, margin: float) -> dict:
    thr = 50.0 + margin
    if not _ok(m):
        return _undefined("ulira", "<=", _why(m, "unlearned model"), m)
    v, ci = float(m["value"]), m.get("ci95")
    status = "pass" if v <= thr else ("fail" if ci and float(ci[0]) > thr else ("inconclusive" if ci else "fail"))
    return _check("ulira", v, ci, thr, "<=", status != "fail",
                  f"U-LiRA accuracy {v:.1f}% <= 50% (chance) + {margin:g} points "
                  f"({(m.get('details') or {}).get('n_shadows', '?')} shadow models)", n=m.get("n"), status=status)


def compute_classifier_verdicts(unlearned: dict, original: dict, retrained: dict | None, *,
                                thresholds: ClassifierThresholds = ClassifierThresholds()) -> dict:
    """Verdicts (module docstring) from :func:`evaluation.profiles.classifier.evaluate_classifier`
    reports. Without ``retrained`` the MIA reference is the unlearned report's ``mia_test_nonmember``
    (the attack's non-member share on the test set)."""
    thr = thresholds
    not_verified = list(NOT_VERIFIED)
    if retrained is not None:
        ref_type = "retrain"
        ua_ref, mia_ref = _value(retrained, "ua"), _value(retrained, "mia_efficacy")
    else:
        ref_type = "test_error"
        ta_u = _value(unlearned, "ta")
        ua_ref, mia_ref = (None if ta_u is None else 100.0 - ta_u), _value(unlearned, "mia_test_nonmember")
        not_verified.append("No exact retrained reference model: UA was compared with the unlearned model's own "
                            "test error and MIA-Efficacy with the attack's non-member rate on the test set, not "
                            "with a model that never saw the data.")
    checks = [
        _gap_check("ua_gap", "UA", "ua", thr.forget_margin, unlearned, ua_ref, ref_type),
        _gap_check("mia_gap", "MIA-Efficacy", "mia_efficacy", thr.mia_margin, unlearned, mia_ref,
                   ref_type if retrained is not None else "test non-member rate"),
        _utility_check("ra_utility", "RA", "ra", thr.utility_margin, unlearned, original),
        _utility_check("ta_utility", "TA", "ta", thr.utility_margin, unlearned, original),
    ]
    ulira = _metric(unlearned, "ulira_accuracy")
    if ulira is not None:
        checks.append(_ulira_check(ulira, thr.ulira_margin))
        k = (ulira.get("details") or {}).get("n_shadows", "?")
        not_verified[0] = ULIRA_RUN.format(k=k)
    gaps = {}
    if retrained is not None:
        best = []
        for m in GAP_METRICS:
            u, r = _value(unlearned, m), _value(retrained, m)
            gaps[m] = None if u is None or r is None else u - r
            ci = (_metric(unlearned, m) or {}).get("ci95")
            if gaps[m] is not None:
                best.append(abs(gaps[m]) if not ci else _nearest_zero([ci[0] - r, ci[1] - r]))
        vals = [abs(v) for v in gaps.values() if v is not None]
        if len(vals) == len(GAP_METRICS):
            avg = sum(vals) / len(vals)
            status = _three_valued(avg, sum(best) / len(best), thr.average_gap_max)
            checks.append(_check("average_gap", avg, None, thr.average_gap_max, "<=", status != "fail",
                                 "mean |metric(unlearned) - metric(retrained)| over UA, RA, TA, MIA-Efficacy "
                                 f"<= {thr.average_gap_max:g} points", n=(unlearned or {}).get("n"), status=status))
        else:
            checks.append(_undefined("average_gap", "<=", "a metric is undefined in the unlearned or retrained report"))
        gaps["average"] = (sum(vals) / len(vals)) if len(vals) == len(GAP_METRICS) else None
    n_f = ((unlearned or {}).get("n") or {}).get("forget")
    if n_f is not None and n_f < 50:
        not_verified.append(f"The forget set has {n_f} examples: a UA or MIA-Efficacy gap below about "
                            f"{100.0 / max(n_f, 1):.0f} points (one example) cannot be resolved, and the CIs are wide.")
    for c in checks:
        if c["status"] == "inconclusive":
            if thr.inconclusive_blocks:
                c["passed"] = False
            c["detail"] += "; inconclusive: outside the margin, but the 95% CI reaches it at this sample size"
            not_verified.append(f"Check '{c['name']}' is inconclusive at this sample size: {c['value']:+.1f} points "
                                f"(CI {c['ci95']}) against {c['threshold']:g}; parity with the retrained model was "
                                "not demonstrated, only not refuted.")
        if c["status"] == "undefined":
            not_verified.append(f"Check '{c['name']}' could not be evaluated: {c['detail']}.")
    return {"passed": all(c["passed"] for c in checks), "checks": checks, "profile": "classifier",
            "reference_type": ref_type, "gaps": gaps, "thresholds": thr.to_dict(), "not_verified": not_verified}
