"""TOFU evaluation (compatibility module): the profiles live in
:mod:`evaluation.profiles.tofu` (``tofu``, the benchmark code's conventions; default) and
:mod:`evaluation.profiles.tofu_paper` (``tofu_paper``, the paper's literal formulas); the
formulas in :mod:`evaluation.profiles.tofu_metrics`. Everything importable from here before
stays importable.
"""

from __future__ import annotations

from .profiles.tofu import (
    TOFU_PROFILES,
    TOFU_PROMPT_FORMATS,
    TofuProfile,
    answer_logprobs,
    evaluate_tofu,
    tofu_profile,
)
from .profiles.tofu_metrics import (
    TOFU_UTILITY_SPLITS,
    AnswerScore,
    TofuQuestion,
    aggregate_tofu,
    choice_probability,
    forget_quality,
    harmonic_mean,
    model_utility,
    truth_ratio,
)

__all__ = [
    "TOFU_PROFILES",
    "TOFU_PROMPT_FORMATS",
    "TOFU_UTILITY_SPLITS",
    "TofuProfile",
    "TofuQuestion",
    "tofu_profile",
    "AnswerScore",
    "answer_logprobs",
    "truth_ratio",
    "choice_probability",
    "harmonic_mean",
    "model_utility",
    "forget_quality",
    "aggregate_tofu",
    "evaluate_tofu",
]
