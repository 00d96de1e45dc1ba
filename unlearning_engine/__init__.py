"""Machine-unlearning engine: pure Python + torch, no Django (DESIGN §2, §5, §6).

Public API: see ``data``, ``modeling``, ``training``, ``dp``, ``methods`` and ``errors``.
"""
from .data import QA_TEMPLATE, Example, format_example, format_prompt, load_jsonl
from .dp import PrivacyLedger, group_privacy, train_dp_base
from .errors import (
    CollapseError,
    PrivacyBudgetError,
    UnknownMethodError,
    UnlearningError,
    UnlearningInputError,
)
from .methods import (
                      UnlearningRequest,
                      UnlearningResult,
                      available_methods,
                      get_method,
                      method_defaults,
                      run_unlearning,
)
from .modeling import (
                      DEMO_RECIPE,
                      PRESETS,
                      build_model,
                      count_parameters,
                      load_artifact,
                      load_smollm2,
                      save_artifact,
                      train_private_corpus_tokenizer,
                      train_tokenizer,
                      weights_sha256,
)
from .presets import PRESET_HP, preset_hyperparameters
from .provenance import read_provenance, require_public_tokenizer
from .public_tokenizer import public_tokenizer
from .training import Progress, TrainStats, train_causal_lm

__all__ = [
    "Example", "QA_TEMPLATE", "format_example", "format_prompt", "load_jsonl",
    "PrivacyLedger", "group_privacy", "train_dp_base",
    "CollapseError", "PrivacyBudgetError", "UnknownMethodError", "UnlearningError",
    "UnlearningInputError",
    "UnlearningRequest", "UnlearningResult", "available_methods", "get_method", "method_defaults",
    "run_unlearning", "PRESET_HP", "preset_hyperparameters",
    "DEMO_RECIPE", "PRESETS", "build_model", "count_parameters", "load_artifact", "load_smollm2",
    "save_artifact", "train_tokenizer", "train_private_corpus_tokenizer",
    "public_tokenizer", "read_provenance", "require_public_tokenizer",
    "weights_sha256", "Progress", "TrainStats", "train_causal_lm",
]
