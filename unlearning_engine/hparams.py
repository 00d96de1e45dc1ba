"""Hyper-parameter validators shared by the methods (all checks run before any training).

Every method declares ``defaults`` (name -> default value). A value is validated by the method's
``validators`` entry for that name when there is one, else as a number (``int_params`` positive
integers, ``nonneg_params`` ≥ 0, everything else > 0), and every known name within its range in
:data:`BOUNDS`. All problems raise
:class:`~unlearning_engine.errors.UnlearningInputError`.
"""
from __future__ import annotations

from typing import Any

from .errors import UnlearningInputError

#: Default LoRA target modules (Llama attention and MLP projections).
LLAMA_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_KEYS = {"r", "alpha", "dropout", "target_modules"}


#: Sane ranges per hyper-parameter name (inclusive; ``lr`` and ``beta`` must also be > 0 by their
#: default validation), applied on top of each method's own checks so that an approval with
#: ``epochs: 1e9`` or ``lr: 1e300`` is refused before any job exists (issue 13 item 7). The ranges are
#: operational limits of this service (a 1000-epoch job already runs for days), not paper values;
#: NPO's β and the task-vector / WHP α stay within two orders of magnitude of the papers' defaults
#: (β = 0.1: Zhang et al. 2024, arXiv 2404.05868 §3; α = 1: Ilharco et al. 2023, arXiv 2212.04089;
#: Eldan & Russinovich 2023, arXiv 2310.02238).
BOUNDS: dict[str, tuple[float, float]] = {
    "epochs": (1, 1000), "reinforce_epochs": (1, 1000), "zero_tail_epochs": (0, 1000),
    "batch_size": (1, 4096), "lr": (0.0, 1.0), "reinforce_lr": (0.0, 1.0),
    "steps": (1, 1_000_000), "max_steps": (1, 1_000_000),
    "beta": (0.0, 100.0), "alpha": (0.0, 100.0), "retain_weight": (0.0, 1000.0),
    "kl_weight": (0.0, 1000.0), "gamma": (0.0, 1000.0), "collapse_nll_factor": (0.0, 1000.0),
    "stop_forget_nll": (0.0, 1000.0), "top_k": (1, 65_536), "C": (0.0, 1e6),
}


def check_bounds(name: str, value: Any) -> Any:
    """Refuse a numeric ``value`` outside :data:`BOUNDS` for ``name`` (other values pass unchanged).

    Raises:
        UnlearningInputError: out of range, with the allowed range in the message.
    """
    if name not in BOUNDS or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    low, high = BOUNDS[name]
    if not low <= value <= high:
        raise UnlearningInputError(
            f"hyper-parameter {name!r} = {value!r} is outside the allowed range [{low:g}, {high:g}]")
    return value


def check_number(name: str, value: Any, kind: type = float, minimum: float | None = 0.0,
                 strict: bool = True, maximum: float | None = None) -> Any:
    """Validate a number (bools rejected); ``kind`` int or float; bounds inclusive unless strict."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnlearningInputError(f"hyper-parameter {name!r} must be a number, got {value!r}")
    if kind is int:
        if int(value) != value:
            raise UnlearningInputError(f"hyper-parameter {name!r} must be an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise UnlearningInputError(f"hyper-parameter {name!r} must be finite, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        op = ">" if strict else ">="
        raise UnlearningInputError(f"hyper-parameter {name!r} must be {op} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise UnlearningInputError(f"hyper-parameter {name!r} must be <= {maximum}, got {value}")
    return value


def v_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UnlearningInputError(f"hyper-parameter {name!r} must be true or false, got {value!r}")
    return value


def v_optional_positive(name: str, value: Any) -> float | None:
    """``None`` (off) or a number > 0."""
    return None if value is None else check_number(name, value)


def v_fraction(name: str, value: Any) -> float:
    """A number in [0, 1)."""
    v = check_number(name, value, minimum=0.0, strict=False)
    if v >= 1.0:
        raise UnlearningInputError(f"hyper-parameter {name!r} must be < 1, got {v}")
    return v


def v_nonneg_int(name: str, value: Any) -> int:
    return check_number(name, value, int, 0, strict=False)


def v_choice(*choices: str):
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise UnlearningInputError(
                f"hyper-parameter {name!r} must be one of {list(choices)}, got {value!r}")
        return value
    return check


def v_preset(name: str, value: Any) -> str:
    from .presets import PRESET_SIZES
    return v_choice(*PRESET_SIZES)(name, value)


def v_lora(name: str, value: Any) -> dict | None:
    """``None`` (full-parameter training) or ``{"r", "alpha", "dropout", "target_modules"}``
    (missing keys get r=8, alpha=16, dropout=0.0, the Llama projections)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UnlearningInputError(f"hyper-parameter {name!r} must be null or an object, got {value!r}")
    unknown = sorted(set(value) - LORA_KEYS)
    if unknown:
        raise UnlearningInputError(f"unknown key(s) in {name!r}: {unknown}; allowed: {sorted(LORA_KEYS)}")
    out = {"r": 8, "alpha": 16.0, "dropout": 0.0, "target_modules": list(LLAMA_LORA_TARGETS)}
    out.update(value)
    out["r"] = check_number(f"{name}.r", out["r"], int, 1, strict=False)
    out["alpha"] = check_number(f"{name}.alpha", out["alpha"])
    out["dropout"] = v_fraction(f"{name}.dropout", out["dropout"])
    tm = out["target_modules"]
    if not isinstance(tm, list) or not tm or not all(isinstance(t, str) and t for t in tm):
        raise UnlearningInputError(f"{name}.target_modules must be a non-empty list of module names")
    return out


def v_anchors(name: str, value: Any) -> dict | None:
    """``None`` or a JSON object {anchored term: generic replacement} of non-empty strings."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()):
        raise UnlearningInputError(
            f"hyper-parameter {name!r} must be an object of {{term: generic}} strings")
    return dict(value)


def resolve(method_name: str, defaults: dict, overrides: dict, validators: dict,
            int_params: frozenset, nonneg_params: frozenset) -> dict:
    """``defaults`` updated with ``overrides`` and validated (unknown keys rejected first)."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise UnlearningInputError(
            f"unknown hyper-parameter(s) for method {method_name!r}: {unknown}; "
            f"allowed: {sorted(defaults)}")
    hp = {**defaults, **overrides}
    for k, v in hp.items():
        check_bounds(k, v)
        if k in validators:
            hp[k] = validators[k](k, v)
        elif k in int_params:
            hp[k] = check_number(k, v, int, 1, strict=False)
        elif k in nonneg_params:
            hp[k] = check_number(k, v, float, 0, strict=False)
        else:
            hp[k] = check_number(k, v, float, 0, strict=True)
    return hp
