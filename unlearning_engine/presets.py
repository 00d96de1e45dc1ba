"""Hyper-parameter presets per method and model size.

A request selects a size with the hyper-parameter ``"preset"`` (default ``"tiny"``); the resolved
hyper-parameters are ``method defaults ← PRESET_HP[preset][method] ← the request's own values``.

Sizes:
- ``"test"``: the unit-test model (modeling preset "test", ~0.1M params): one short epoch.
- ``"tiny"``: the demo model (modeling preset "tiny", 1.38M params, TOFU demo with 600 records,
  forget = 20 records); these are the methods' defaults (retrain/dp2/npo_gd = ``DEMO_RECIPE``).
- ``"smollm2-135m"``: SmolLM2-135M-Instruct (:func:`unlearning_engine.modeling.load_smollm2`);
  usual full fine-tuning learning rates for a 135M model (1e-5 … 2e-5), LoRA suggested on CPU.
  **Not calibrated** on a benchmark yet; treat as starting points.
- ``"smollm2-135m-lora"``: SmolLM2-135M-Instruct with a LoRA adapter (r = 16, α = 32, every
  attention and MLP projection; Hu et al. arXiv 2106.09685) on every weight-changing method, at
  LoRA learning rates (≈ 10–50× the full-parameter ones, the usual LoRA range). The budget is
  sized for 2 CPU cores on a TOFU forget01 request (40 forget records): every method finishes in
  a few minutes (see ``bench/methods.py`` and BENCHMARKS.md for the measured wall times and
  metrics). ``SMOLLM2_LORA_RECIPE`` holds the matching target / DP-base training recipe.
"""
from __future__ import annotations

import copy

from .hparams import LLAMA_LORA_TARGETS

PRESET_SIZES = ("test", "tiny", "smollm2-135m", "smollm2-135m-lora")

_TINY: dict[str, dict] = {
    "retrain": {"epochs": 16, "lr": 3e-3, "batch_size": 16},
    "dp2": {"epochs": 12, "lr": 3e-3, "batch_size": 16},
    "npo_gd": {"epochs": 10, "lr": 5e-4, "batch_size": 4, "beta": 0.1, "retain_weight": 1.0},
    "ga": {"epochs": 5, "lr": 2e-4, "batch_size": 4},
    "gd": {"epochs": 10, "lr": 5e-4, "batch_size": 4, "retain_weight": 1.0},
    "kl": {"epochs": 10, "lr": 5e-4, "batch_size": 4, "kl_weight": 1.0},
    "npo": {"epochs": 10, "lr": 5e-4, "batch_size": 4, "beta": 0.1},
    "npo_kl": {"epochs": 10, "lr": 5e-4, "batch_size": 4, "beta": 0.1, "kl_weight": 1.0},
    "task_vector": {"epochs": 10, "lr": 1e-3, "batch_size": 4, "alpha": 1.0},
    "whp": {"reinforce_epochs": 10, "reinforce_lr": 1e-3, "epochs": 5, "lr": 5e-4,
            "batch_size": 4, "alpha": 1.0},
    "l1_sparse": {"epochs": 5, "lr": 1e-3, "batch_size": 16, "gamma": 1.0,
                  "zero_tail_epochs": 1, "prune_ratio": 0.0},
    "eco": {"top_k": 64, "threshold": 0.5, "C": 10.0},
}

_TEST: dict[str, dict] = {
    "retrain": {"epochs": 1, "lr": 3e-3, "batch_size": 8},
    "dp2": {"epochs": 1, "lr": 3e-3, "batch_size": 8},
    "npo_gd": {"epochs": 1, "lr": 1e-3, "batch_size": 2},
    "ga": {"epochs": 1, "lr": 1e-3, "batch_size": 2},
    "gd": {"epochs": 1, "lr": 1e-3, "batch_size": 2},
    "kl": {"epochs": 1, "lr": 1e-3, "batch_size": 2},
    "npo": {"epochs": 1, "lr": 1e-3, "batch_size": 2},
    "npo_kl": {"epochs": 1, "lr": 1e-3, "batch_size": 2},
    "task_vector": {"epochs": 1, "lr": 1e-3, "batch_size": 2, "alpha": 1.0},
    "whp": {"reinforce_epochs": 1, "reinforce_lr": 1e-3, "epochs": 1, "lr": 1e-3,
            "batch_size": 2},
    "l1_sparse": {"epochs": 2, "lr": 1e-3, "batch_size": 8, "zero_tail_epochs": 1},
    "eco": {"top_k": 16},
}

_SMOLLM2: dict[str, dict] = {
    "retrain": {"epochs": 3, "lr": 2e-5, "batch_size": 8},
    "dp2": {"epochs": 2, "lr": 2e-5, "batch_size": 8},
    "npo_gd": {"epochs": 5, "lr": 1e-5, "batch_size": 4, "beta": 0.1, "retain_weight": 1.0},
    "ga": {"epochs": 5, "lr": 1e-5, "batch_size": 4},
    "gd": {"epochs": 5, "lr": 1e-5, "batch_size": 4, "retain_weight": 1.0},
    "kl": {"epochs": 5, "lr": 1e-5, "batch_size": 4, "kl_weight": 1.0},
    "npo": {"epochs": 5, "lr": 1e-5, "batch_size": 4, "beta": 0.1},
    "npo_kl": {"epochs": 5, "lr": 1e-5, "batch_size": 4, "beta": 0.1, "kl_weight": 1.0},
    "task_vector": {"epochs": 5, "lr": 1e-5, "batch_size": 4, "alpha": 1.0},
    "whp": {"reinforce_epochs": 3, "reinforce_lr": 1e-5, "epochs": 3, "lr": 1e-5,
            "batch_size": 4, "alpha": 1.0},
    "l1_sparse": {"epochs": 3, "lr": 1e-5, "batch_size": 8, "gamma": 1.0,
                  "zero_tail_epochs": 1, "prune_ratio": 0.0},
    "eco": {"top_k": 192, "threshold": 0.5, "C": 10.0},
}

#: LoRA adapter of the "smollm2-135m-lora" preset.
SMOLLM2_LORA = {"r": 16, "alpha": 32.0, "dropout": 0.0, "target_modules": list(LLAMA_LORA_TARGETS)}

_SMOLLM2_LORA: dict[str, dict] = {
    "retrain": {"epochs": 4, "lr": 1e-3, "batch_size": 8},
    "dp2": {"epochs": 2, "lr": 1e-3, "batch_size": 8},
    "npo_gd": {"epochs": 5, "lr": 2e-4, "batch_size": 4, "beta": 0.1, "retain_weight": 1.0},
    "ga": {"epochs": 3, "lr": 2e-4, "batch_size": 4},
    "gd": {"epochs": 5, "lr": 2e-4, "batch_size": 4, "retain_weight": 1.0},
    "kl": {"epochs": 5, "lr": 2e-4, "batch_size": 4, "kl_weight": 1.0},
    "npo": {"epochs": 5, "lr": 2e-4, "batch_size": 4, "beta": 0.1},
    "npo_kl": {"epochs": 5, "lr": 2e-4, "batch_size": 4, "beta": 0.1, "kl_weight": 1.0},
    "task_vector": {"epochs": 5, "lr": 1e-3, "batch_size": 4, "alpha": 1.0},
    "whp": {"reinforce_epochs": 3, "reinforce_lr": 1e-3, "epochs": 3, "lr": 2e-4,
            "batch_size": 4, "alpha": 1.0},
    "l1_sparse": {"epochs": 2, "lr": 2e-4, "batch_size": 8, "gamma": 1.0,
                  "zero_tail_epochs": 1, "prune_ratio": 0.0},
    "eco": {"top_k": 192, "threshold": 0.5, "C": 10.0},
}
for _m, _hp in _SMOLLM2_LORA.items():
    if _m != "eco":
        _hp["lora"] = copy.deepcopy(SMOLLM2_LORA)

#: Target (served model) and DP-base recipe matching "smollm2-135m-lora": the target is the
#: same LoRA fine-tune as ``retrain`` (so the retrain is the exact reference), merged into the
#: weights; the DP base is a DP-SGD LoRA fine-tune (opacus, per-sample gradients of the adapter).
SMOLLM2_LORA_RECIPE: dict[str, dict] = {
    "target": copy.deepcopy(_SMOLLM2_LORA["retrain"]),
    "dp_base": {"target_epsilon": 8.0, "epochs": 3, "lr": 1e-3, "batch_size": 32,
                "max_grad_norm": 1.0, "lora": copy.deepcopy(SMOLLM2_LORA)},
}

PRESET_HP: dict[str, dict[str, dict]] = {"test": _TEST, "tiny": _TINY, "smollm2-135m": _SMOLLM2,
                                         "smollm2-135m-lora": _SMOLLM2_LORA}


def preset_hyperparameters(method: str, preset: str = "tiny") -> dict:
    """Copy of the preset values of ``method`` for model size ``preset`` (``{}`` if none).

    Raises:
        KeyError: unknown preset.
    """
    return copy.deepcopy(PRESET_HP[preset].get(method, {}))
