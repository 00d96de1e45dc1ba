"""Human labels, units and precision for everything the portal shows (issue 21 item 4).

Enums stored on rows use their Django ``choices`` labels (``requests_app.models``: TicketStatus,
JobStatus, Jurisdiction, LegalGround, DenialException); this module adds the vocabularies that
are not model fields: unlearning methods (names + the registry's one-line descriptions), metrics
and verdict checks (label, unit, decimals), evaluation roles, comparison operators and the keys of
the DP ledger. Unknown codes fall back to the code itself, so nothing is hidden.
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from ..models import DenialException, JobStatus, Jurisdiction, LegalGround, TicketStatus


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str  # shown after the value ("" for none)
    decimals: int
    scale: float = 1.0  # a fraction shown as a percentage has scale 100


METRICS: dict[str, Metric] = {
    "verbmem_forget": Metric(_("Verbatim memorisation of the removed texts (VerbMem)"), _("ROUGE-L ×100"), 1),
    "knowmem_forget": Metric(_("Knowledge of the removed facts (KnowMem, forget set)"), _("ROUGE-L ×100"), 1),
    "knowmem_retain": Metric(_("Knowledge kept on other data (KnowMem, retain set)"), _("ROUGE-L ×100"), 1),
    "mink_auc": Metric(_("Membership-inference AUC (Min-K% Prob)"), "", 3),
    "loss_auc": Metric(_("Membership-inference AUC (loss)"), "", 3),
    "zlib_auc": Metric(_("Membership-inference AUC (zlib)"), "", 3),
    "minkpp_auc": Metric(_("Membership-inference AUC (Min-K%++)"), "", 3),
    "privleak": Metric(_("Privacy leakage against an exact retrain (PrivLeak)"), "%", 1),
    "no_collapse": Metric(_("Degenerate answers (model collapse check)"), "%", 1, scale=100.0),
    "truth_ratio_forget": Metric(_("Truth ratio on the forget set (TOFU)"), "", 3),
    "forget_quality": Metric(_("Forget quality (TOFU, KS-test p-value)"), "", 3),
    "model_utility": Metric(_("Model utility (TOFU)"), "", 3),
}

COMPARISONS = {"<=": "≤", ">=": "≥", "<": "<", ">": ">", "abs<=": "|value| ≤", "==": "="}

ROLES = {
    "original": _("Before removal (serving model)"),
    "unlearned": _("After removal"),
    "retrained": _("Exact retrain (reference)"),
    "reference": _("Exact retrain (reference)"),
    "published": _("Published"),
    "candidate": _("Candidate (not published)"),
}

METHOD_NAMES = {
    "dp2": _("DP2 (fine-tune the differentially private base on the kept data)"),
    "retrain": _("Exact retraining on the kept data"),
    "ga": _("Gradient ascent"),
    "gd": _("Gradient difference"),
    "kl": _("Gradient ascent with KL regularisation"),
    "npo": _("Negative preference optimisation (NPO)"),
    "npo_gd": _("NPO with a retain loss"),
    "npo_kl": _("NPO with KL regularisation"),
    "task_vector": _("Task-vector negation"),
    "whp": _("Who's Harry Potter (generic-label fine-tune)"),
    "l1_sparse": _("ℓ1-sparse fine-tune"),
    "eco": _("ECO prompt suppression (weights unchanged)"),
    "ft": _("Fine-tune on the kept data"),
    "rl": _("Random labels on the forgotten records"),
    "laf": _("Label-agnostic forgetting (LAF, no labels)"),
    "laf_r": _("LAF, then refit the head with a few labels"),
}

LEDGER_KEYS = {
    "epsilon": (_("Privacy loss ε"), 3), "delta": (_("Failure probability δ"), None),
    "target_epsilon": (_("Target ε"), 2), "noise_multiplier": (_("Noise multiplier σ"), 3),
    "sample_rate": (_("Sampling rate q"), 4), "steps": (_("DP-SGD steps"), 0), "epochs": (_("Epochs"), 0),
    "max_grad_norm": (_("Clipping norm C"), 2), "accountant": (_("Privacy accountant"), None),
    "privacy_unit": (_("Privacy unit"), None), "n_units": (_("Privacy units"), 0),
    "n_records": (_("Training records"), 0), "max_records_per_unit": (_("Most records per unit"), 0),
    "records_without_subject": (_("Records without a data subject"), 0), "batch_size": (_("Batch size"), 0),
    "rdp_optimal_order": (_("Optimal RDP order α"), 2), "noise_source": (_("Noise source"), None),
    "tokenizer_provenance": (_("Tokenizer"), None), "epsilons": (_("ε per accountant"), None),
    "limitations": (_("Limitations"), None), "lr": (_("Learning rate"), None),
}

ACCOUNTANTS = {"rdp": _("Rényi DP (RDP)"), "prv": _("Privacy random variables (PRV)"), "gdp": _("Gaussian DP")}
PRIVACY_UNITS = {"record": _("one training record"), "subject": _("one data subject (all their records)")}

_CHOICES = {
    "ticket_status": TicketStatus, "job_status": JobStatus, "jurisdiction": Jurisdiction,
    "legal_ground": LegalGround, "exception": DenialException,
}


def choice_label(kind: str, value) -> str:
    """The ``choices`` label of ``value`` in the enum ``kind`` (see ``_CHOICES``), else the value."""
    enum = _CHOICES[kind]
    try:
        return str(enum(value).label)
    except ValueError:
        return str(value if value not in (None, "") else "—")


def method_label(name: str) -> str:
    return str(METHOD_NAMES.get(name, name or "—"))


def method_description(name: str, family: str = "causal_lm") -> str:
    """The registry's one-line description (``Method.description``) of the implementation for
    ``family`` (else the method's first one), or ""."""
    from unlearning_engine.methods import method_class, method_families

    cls = method_class(name, family) or next((method_class(name, f) for f in method_families(name)), None)
    return cls.description if cls else ""


def metric_label(name: str) -> str:
    m = METRICS.get(name)
    return str(m.label) if m else str(name).replace("_", " ")


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def format_number(value, decimals: int) -> str:
    v = _number(value)
    if v is None:
        return "—"
    return f"{v:,.{decimals}f}".replace("-", "−")


def metric_value(name: str, value, *, unit: bool = True) -> str:
    """``value`` of metric ``name`` with its precision and unit: ``"12.3 ROUGE-L ×100"``, ``"0.512"``."""
    m = METRICS.get(name, Metric(name, "", 3))
    v = _number(value)
    if v is None:
        return "—"
    text = format_number(v * m.scale, m.decimals)
    if unit and m.unit:
        text += ("" if m.unit == "%" else "\u00a0") + str(m.unit)
    return text


def metric_ci(name: str, ci) -> str:
    """A 95 % confidence interval as ``"[a, b]"`` with the metric's precision (``"—"`` if none)."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or any(_number(x) is None for x in ci):
        return "—"
    m = METRICS.get(name, Metric(name, "", 3))
    lo, hi = (format_number(float(x) * m.scale, m.decimals) for x in ci)
    return f"[{lo}, {hi}]"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def scientific(value, digits: int = 2) -> str:
    """``1e-05`` → ``"1.0 × 10⁻⁵"`` (small probabilities such as δ); plain below 4 decades."""
    v = _number(value)
    if v is None:
        return "—"
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.{digits + 1}g}"
    mantissa, exponent = f"{v:.{digits - 1}e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def comparison_label(op: str) -> str:
    return COMPARISONS.get(op, op or "")


def role_label(role: str) -> str:
    if role.startswith("retrained_s") and role[len("retrained_s"):].isdigit():
        return str(_("Exact retrain (reference, training run %(n)s)") % {"n": int(role[len("retrained_s"):]) + 1})
    return str(ROLES.get(role, role))


def ledger_rows(ledger: dict) -> list[dict]:
    """The DP ledger as (label, readable value) rows, known keys first in a fixed order."""
    rows = []
    keys = [k for k in LEDGER_KEYS if k in ledger] + sorted(k for k in ledger if k not in LEDGER_KEYS)
    for key in keys:
        label, decimals = LEDGER_KEYS.get(key, (key.replace("_", " "), None))
        rows.append({"key": key, "label": str(label), "value": ledger_value(key, ledger[key], decimals)})
    return rows


def ledger_value(key: str, value, decimals: int | None = None) -> str:
    if key == "accountant":
        return str(ACCOUNTANTS.get(value, value))
    if key == "privacy_unit":
        return str(PRIVACY_UNITS.get(value, value))
    if key == "delta" and _number(value) is not None:
        return scientific(value)
    if key == "tokenizer_provenance" and isinstance(value, dict):
        kind = value.get("kind", "unrecorded")
        name = value.get("name") or value.get("source") or ""
        return f"{str(kind).replace('_', ' ')}{': ' + str(name) if name else ''}"
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')} {ledger_value(k, v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "; ".join(ledger_value(key, v) for v in value)
    if decimals is not None and _number(value) is not None:
        return format_number(value, decimals)
    if _number(value) is not None:
        return f"{float(value):.4g}"
    return "—" if value in (None, "") else str(value)


_PY_DICT = re.compile(r"\{(?:\s*'[^'{}]*'\s*:\s*[^{}:,]+,?)+\s*\}")


def readable_text(text: str) -> str:
    """Statements as people read them: a Python dict printed into a sentence
    (``n = {'forget': 20, 'holdout': 20}``) becomes ``n = forget 20, holdout 20``."""
    def repl(match):
        try:
            value = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return match.group(0)
        if not isinstance(value, dict):
            return match.group(0)
        return ", ".join(f"{v} {str(k).replace('_', ' ')}" for k, v in value.items())

    return _PY_DICT.sub(repl, text)


RESULT_LABELS = {"pass": _("pass"), "fail": _("fail"), "inconclusive": _("inconclusive")}


def check_row(check: dict) -> dict:
    """One verdict check for people: label, value with unit, CI "[a, b]", "≥ 54.0 ROUGE-L ×100" and the
    three-valued result of :func:`evaluation.certificate_html.check_result`."""
    from evaluation.certificate_html import check_result

    result, note = check_result(check)
    name = str(check.get("name") or "")
    threshold = metric_value(name, check.get("threshold"))
    return {
        "name": name, "label": metric_label(name), "result": result, "result_note": note,
        "result_label": str(RESULT_LABELS.get(result, result)),
        "value_text": metric_value(name, check.get("value")),
        "ci_text": metric_ci(name, check.get("ci95")),
        "threshold_text": f"{comparison_label(str(check.get('comparison') or ''))} {threshold}".strip(),
        "detail": readable_text(str(check.get("detail") or "")),
    }


PHASES = {"queued": _("waiting for a worker"), "loading": _("loading the model"), "unlearning": _("unlearning"),
          "evaluating": _("checking the result"), "certifying": _("signing the certificate"), "done": _("done")}


def phase_label(phase: str) -> str:
    if not phase:
        return ""
    return str(PHASES.get(phase, METHOD_NAMES.get(phase, str(phase).replace("_", " "))))
