"""Pass/fail verdicts of an unlearned model (DESIGN §7 "Verdict").

Checks (MUSE arXiv 2407.06460 §3–§4 criteria C1–C3, with DESIGN §7 thresholds):

1. ``verbmem_forget``: VerbMem_f(unlearned) ≤ VerbMem_f(retrained) + 5 points, or, when no
   retrained report is available, ≤ 50% of the original model's VerbMem_f.
2. ``knowmem_forget``: the same rule for KnowMem_f.
3. ``privleak``: |PrivLeak| ≤ 5 with PrivLeak = (AUC_u − AUC_ref)/AUC_ref × 100 and
   AUC_ref = the retrained model's Min-K% AUC (``reference_type="retrain"``), else a value
   supplied with the corpus (``"supplied"``), else 0.5 (``"ideal"``, flagged).
   **Deviation** (documented in README "Verdicts"): the check is three-valued. ``pass`` when
   |PrivLeak| ≤ band; ``fail`` when the 95% CI lies entirely outside the band (a leak or
   over-unlearning the data show); otherwise ``inconclusive`` — the sample (e.g. the 20 records
   of one person) cannot tell. When both models' per-text Min-K% scores are in the reports the CI
   is a *paired* bootstrap (the same resampled forget and holdout texts for both models).
   An inconclusive PrivLeak does not block the verdict when ``privleak_inconclusive_blocks`` is
   False (default); it is then listed, with its CI, among the things not verified.
4. ``knowmem_retain`` (utility): KnowMem_r(unlearned) ≥ 90% of the original's.
5. ``no_collapse``: fraction of degenerate generations (empty or one repeated token/word)
   ≤ ``max_degenerate_fraction``.

An ``undefined`` metric never passes: its check is listed with ``passed = False``,
``status = "undefined"`` and the reason.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .mia import privleak as _privleak
from .privleak_reference import paired_privleak_ci, retrain_reference

__all__ = ["Thresholds", "compute_verdicts", "BASE_NOT_VERIFIED"]


@dataclass(frozen=True)
class Thresholds:
    """Verdict thresholds (DESIGN §7). Margins are ROUGE-L F1 points × 100; fractions in [0, 1];
    ``privleak_band`` in PrivLeak percent."""

    verbmem_margin: float = 5.0
    knowmem_margin: float = 5.0
    privleak_band: float = 5.0
    utility_fraction: float = 0.9
    no_reference_fraction: float = 0.5
    max_degenerate_fraction: float = 0.2
    privleak_inconclusive_blocks: bool = False
    bootstrap_resamples: int = 1000

    def to_dict(self) -> dict:
        """JSON-ready dict of the thresholds."""
        return asdict(self)


#: Statements of what a verdict does *not* verify; always listed in the certificate.
BASE_NOT_VERIFIED: tuple[str, ...] = (
    "No verification against extraction attacks beyond Min-K% (and loss, zlib, PPL/lower, Min-K%++) "
    "membership inference; adaptive or white-box attacks were not run.",
    "KnowMem was evaluated on the training questions only (no paraphrased questions), "
    "zero-shot with the training template.",
    "VerbMem was evaluated on the second half of each forget answer only, with greedy decoding; "
    "sampling-based decoding was not tested.",
    "Information about the data subject that also appears in retained records or in other "
    "sources is not considered forgotten and was not measured.",
    "Robustness to relearning (fine-tuning the model again on related data) was not tested.",
    "TOFU truth ratio, Forget Quality and Model Utility on real authors / world facts were not computed.",
)


#: Replacements of BASE_NOT_VERIFIED entries (by index) for reports of other profiles, so
#: that a certificate never states something false about what was evaluated.
_PROFILE_NOT_VERIFIED: dict[str, dict[int, str | None]] = {
    "muse-news": {
        1: "KnowMem was evaluated 10-shot on the MUSE-News QA sets only (no paraphrased "
           "questions).",
        2: "VerbMem was evaluated on the MUSE-News verbmem prompt/gt pairs only, with greedy "
           "decoding; sampling-based decoding was not tested.",
    },
    "tofu": {5: None},  # truth ratio, Forget Quality and Model Utility are in the report
}



def _sample_sizes(n) -> str:
    """``n`` of a metric in words for a certificate statement: ``"n = 20"`` or
    ``"20 forget and 20 holdout texts"`` for a per-split dict (never a Python dict literal)."""
    if isinstance(n, dict):
        return " and ".join(f"{v} {k}" for k, v in n.items()) + " texts"
    return f"n = {n}"

def _not_verified_base(report: dict | None) -> list[str]:
    name = str(((report or {}).get("profile") or {}).get("name") or "")
    repl = {}
    if name.startswith("muse-news"):
        repl = _PROFILE_NOT_VERIFIED["muse-news"]
    elif name in ("tofu", "tofu_paper") or name.startswith("tofu-v"):  # not "tofu-qa-v1"
        repl = _PROFILE_NOT_VERIFIED["tofu"]
    out = []
    for i, s in enumerate(BASE_NOT_VERIFIED):
        s2 = repl.get(i, s)
        if s2 is not None:
            out.append(s2)
    return out


def _metric(report: dict | None, name: str) -> dict | None:
    if not report:
        return None
    return (report.get("metrics") or {}).get(name)


def _ok(m: dict | None) -> bool:
    v = None if m is None else m.get("value")
    return (
        m is not None
        and m.get("status", "ok") == "ok"
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
    )


def _why(m: dict | None, who: str) -> str:
    if m is None:
        return f"{who}: metric missing from the report"
    return f"{who}: metric undefined ({m.get('reason') or 'no value'})"


def _check(name, value, ci95, threshold, comparison, passed, detail, n=None, status=None) -> dict:
    return {
        "name": name,
        "value": value,
        "ci95": None if ci95 is None else [float(ci95[0]), float(ci95[1])],
        "threshold": threshold,
        "comparison": comparison,
        "passed": bool(passed),
        "status": status or ("pass" if passed else "fail"),
        "detail": detail,
        "n": n,
    }


def _undefined(name, comparison, detail, m=None) -> dict:
    return _check(
        name,
        None if m is None else m.get("value"),
        None if m is None else m.get("ci95"),
        None,
        comparison,
        False,
        detail,
        n=None if m is None else m.get("n"),
        status="undefined",
    )


def _forget_check(name, label, margin, unlearned, original, retrained, thr) -> dict:
    u = _metric(unlearned, name)
    if not _ok(u):
        return _undefined(name, "<=", _why(u, "unlearned model"), u)
    r = _metric(retrained, name)
    if retrained is not None:
        if not _ok(r):
            return _undefined(name, "<=", _why(r, "retrained reference"), u)
        threshold = float(r["value"]) + margin
        detail = (
            f"{label}_f(unlearned) <= {label}_f(retrained) {r['value']:.2f} + {margin:g} points"
        )
    else:
        o = _metric(original, name)
        if not _ok(o):
            return _undefined(
                name, "<=", "no retrained reference and " + _why(o, "original model"), u
            )
        threshold = float(o["value"]) * thr.no_reference_fraction
        detail = (
            f"no retrained reference: {label}_f(unlearned) <= "
            f"{thr.no_reference_fraction:g} x {label}_f(original) {o['value']:.2f}"
        )
    value = float(u["value"])
    return _check(
        name, value, u.get("ci95"), threshold, "<=", value <= threshold, detail, n=u.get("n")
    )


def compute_verdicts(
    unlearned: dict,
    original: dict,
    retrained: dict | None,
    *,
    reference_auc: float | None,
    thresholds: Thresholds = Thresholds(),
    reference_type: str | None = None,
    retrained_others=(),
) -> dict:
    """Verdicts of an unlearned model from evaluation reports (DESIGN §7; MUSE arXiv 2407.06460).

    Args:
        unlearned, original, retrained: report dicts from
            :func:`evaluation.report.evaluate_qa_model`, :func:`evaluation.muse.evaluate_muse_news`
            or :func:`evaluation.tofu.evaluate_tofu` (``retrained`` may be ``None``); the
            ``not_verified`` statements follow the unlearned report's profile name.
        reference_auc: Min-K% AUC of a reference model on the same forget/holdout texts,
            used when ``retrained`` is ``None`` or its AUC is undefined
            (``reference_type`` defaults to ``"supplied"``; pass ``reference_type="retrain"``
            if it was measured on an exact retrain). A retrained report's AUC takes
            precedence. With neither, 0.5 is used and flagged ``"ideal"``.
        thresholds: :class:`Thresholds`.
        retrained_others: reports of further exact retrains with other training seeds, on the same
            texts. The PrivLeak reference is then the mean of all retrains' Min-K% AUCs and its CI
            includes their seed-to-seed variation as a prediction interval
            (:mod:`evaluation.privleak_reference`; Hayes et al. arXiv 2403.01218). The VerbMem/KnowMem thresholds stay relative to ``retrained``.

    Returns::

        {"passed": bool,
         "checks": [{"name", "value", "ci95", "threshold", "comparison", "passed",
                     "status": "pass"|"fail"|"undefined", "detail", "n"}, ...],
         "privleak": {"value", "ci95", "auc_unlearned", "reference", "reference_type",
                      "flagged", "band", "retrain_aucs", "retrain_seed_spread"},
         "thresholds": Thresholds.to_dict(),
         "not_verified": [str, ...]}

    Raises ``ValueError`` for an invalid ``reference_auc`` (not in (0, 1]).
    """
    thr = thresholds
    not_verified = _not_verified_base(unlearned)
    checks = [
        _forget_check(
            "verbmem_forget", "VerbMem", thr.verbmem_margin, unlearned, original, retrained, thr
        ),
        _forget_check(
            "knowmem_forget", "KnowMem", thr.knowmem_margin, unlearned, original, retrained, thr
        ),
    ]
    if retrained is None:
        not_verified.append(
            "No exact retrained reference model: forget-set thresholds are relative to the "
            "original model (<= 50%), not to a model that never saw the data."
        )

    # PrivLeak reference
    if reference_auc is not None and not (
        isinstance(reference_auc, (int, float))
        and math.isfinite(reference_auc)
        and 0 < reference_auc <= 1
    ):
        raise ValueError(f"reference_auc must be in (0, 1], got {reference_auc!r}")
    r_auc = _metric(retrained, "mink_auc")
    rref = retrain_reference(r_auc if retrained is not None else None,
                             [_metric(o, "mink_auc") for o in retrained_others or ()])
    ref_note = None
    zero_ref = retrained is not None and _ok(r_auc) and float(r_auc["value"]) == 0.0
    if rref.value is not None:
        ref, ref_type = rref.value, "retrain"
        if rref.k > 1:
            ref_note = (f"reference = mean Min-K% AUC of {rref.k} exact retrains with different seeds "
                        f"({', '.join(f'{a:.4f}' for a in rref.aucs)}); the CI includes their seed-to-seed variation; "
                        "each retrain against the others: PrivLeak "
                        + ", ".join(f"{x:+.1f}" for x in rref.seed_spread))
    else:
        if retrained is not None and _ok(r_auc):
            # AUC_ref = 0: every forget text scored less member-like than every holdout text;
            # the relative PrivLeak (AUC_u − AUC_ref) / AUC_ref is undefined there (MUSE §3)
            ref_note = ("the retrained model's Min-K% AUC is 0, where the relative PrivLeak is undefined; "
                        f"n = {_sample_sizes(r_auc.get('n'))}")
            not_verified.append(
                "The exact retrained model's Min-K% AUC is 0 on these texts, so PrivLeak relative to it is "
                "undefined; PrivLeak against the ideal reference 0.5 is reported and can be inconclusive, "
                "never pass or fail, on these texts.")
        elif retrained is not None:
            ref_note = (
                "retrained report has no usable Min-K% AUC (" + _why(r_auc, "retrained") + ")"
            )
        if reference_auc is not None:
            ref, ref_type = float(reference_auc), reference_type or "supplied"
        else:
            ref, ref_type = 0.5, "ideal"
    flagged = ref_type != "retrain"
    if ref_type == "retrain" and rref.k == 1:
        not_verified.append(
            "The PrivLeak reference is one exact retrain (one training seed): how much a retrain's "
            "Min-K% AUC moves with the seed was not measured, so the PrivLeak CI covers the text "
            "sample only.")
    if ref_type == "ideal":
        not_verified.append(
            "PrivLeak used the ideal reference AUC 0.5 (reference: ideal), not a retrained "
            "model's AUC on the same texts."
        )
    elif ref_type == "supplied":
        not_verified.append(
            "PrivLeak used a supplied reference AUC, not one measured on an exact retrain."
        )
    u_auc = _metric(unlearned, "mink_auc")
    pl_value, pl_ci = None, None
    if _ok(u_auc):
        pl_value = _privleak(float(u_auc["value"]), ref)
        paired = (paired_privleak_ci(u_auc, rref.metrics, thr.bootstrap_resamples)
                  if ref_type == "retrain" else None)
        if paired is not None:
            pl_ci, ci_how = paired, "paired bootstrap over the same texts for both models"
        elif u_auc.get("ci95"):
            lo, hi = u_auc["ci95"]
            pl_ci = [_privleak(float(lo), ref), _privleak(float(hi), ref)]
            ci_how = "the unlearned AUC CI mapped with the reference held fixed"
        band = thr.privleak_band
        if abs(pl_value) <= band:
            status = "pass"
        elif pl_ci is not None and (pl_ci[0] > band or pl_ci[1] < -band):
            status = "fail"
        elif pl_ci is None:
            status = "fail"
        else:
            status = "inconclusive"
        if zero_ref and status == "fail" and pl_ci is not None:
            # the retrained model itself scores 0 on these texts: a gap to the ideal 0.5 is not
            # evidence of leakage, so the check cannot fail on it; it is inconclusive (and listed)
            status = "inconclusive"
        detail = (
            f"|PrivLeak| <= {band:g}; PrivLeak = (AUC_u {u_auc['value']:.4f} - AUC_ref "
            f"{ref:.4f}) / AUC_ref x 100; reference: {ref_type}"
            + (f"; 95% CI by {ci_how}" if pl_ci is not None else "")
        )
        if status == "inconclusive":
            detail += (f"; inconclusive: the point estimate is outside the band but the 95% CI "
                       f"[{pl_ci[0]:.1f}, {pl_ci[1]:.1f}] overlaps it at this sample size")
            not_verified.append(
                f"PrivLeak is inconclusive at this sample size ({_sample_sizes(u_auc.get('n'))}): "
                f"{pl_value:+.1f} with 95% CI [{pl_ci[0]:.1f}, {pl_ci[1]:.1f}] against the band "
                f"[-{band:g}, {band:g}]; membership-inference parity with the retrained model was not "
                "demonstrated, only not refuted."
            )
        if ref_note:
            detail += "; " + ref_note
        passed = status == "pass" or (status == "inconclusive" and not thr.privleak_inconclusive_blocks)
        checks.append(
            _check("privleak", pl_value, pl_ci, band, "abs<=", passed, detail, n=u_auc.get("n"), status=status)
        )
    else:
        checks.append(
            _undefined("privleak", "abs<=", _why(u_auc, "unlearned model Min-K% AUC"), u_auc)
        )

    # Utility
    u = _metric(unlearned, "knowmem_retain")
    o = _metric(original, "knowmem_retain")
    if not _ok(u):
        checks.append(_undefined("knowmem_retain", ">=", _why(u, "unlearned model"), u))
    elif not _ok(o):
        checks.append(_undefined("knowmem_retain", ">=", _why(o, "original model"), u))
    else:
        threshold = float(o["value"]) * thr.utility_fraction
        checks.append(
            _check(
                "knowmem_retain",
                float(u["value"]),
                u.get("ci95"),
                threshold,
                ">=",
                float(u["value"]) >= threshold,
                f"KnowMem_r(unlearned) >= {thr.utility_fraction:g} x KnowMem_r(original) {o['value']:.2f}",
                n=u.get("n"),
            )
        )

    # Collapse
    deg = ((unlearned or {}).get("degenerate") or {}).get("all")
    if not deg or not deg.get("n"):
        checks.append(
            _check(
                "no_collapse",
                None,
                None,
                thr.max_degenerate_fraction,
                "<=",
                False,
                "no generations to inspect for collapse",
                status="undefined",
            )
        )
    else:
        frac = float(deg["fraction"])
        checks.append(
            _check(
                "no_collapse",
                frac,
                None,
                thr.max_degenerate_fraction,
                "<=",
                frac <= thr.max_degenerate_fraction,
                f"degenerate generations (empty {deg.get('empty', 0)}, repeated {deg.get('repeated', 0)}) "
                f"of {deg['n']} <= {thr.max_degenerate_fraction:g}",
                n=int(deg["n"]),
            )
        )

    for c in checks:
        if c["status"] == "undefined":
            not_verified.append(f"Check '{c['name']}' could not be evaluated: {c['detail']}.")

    return {
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "privleak": {
            "value": pl_value,
            "ci95": pl_ci,
            "auc_unlearned": u_auc.get("value") if u_auc else None,
            "reference": ref,
            "reference_type": ref_type,
            "flagged": flagged,
            "band": [-thr.privleak_band, thr.privleak_band],
            "retrain_aucs": rref.aucs,
            "retrain_seed_spread": rref.seed_spread,
        },
        "thresholds": thr.to_dict(),
        "not_verified": not_verified,
    }
