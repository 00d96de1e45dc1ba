"""Hyper-parameter presets per model size (unlearning_engine.presets)."""
from __future__ import annotations

import pytest

from unlearning_engine.errors import UnlearningInputError
from unlearning_engine.methods import available_methods, get_method
from unlearning_engine.presets import PRESET_HP, PRESET_SIZES, SMOLLM2_LORA, preset_hyperparameters


def test_every_preset_covers_every_method():
    for size in PRESET_SIZES:
        assert set(PRESET_HP[size]) == set(available_methods()), size


@pytest.mark.parametrize("method", available_methods())
def test_smollm2_lora_preset_resolves(method):
    hp = get_method(method).resolve_hyperparameters({"preset": "smollm2-135m-lora"})
    if method == "eco":
        assert "lora" not in hp
    else:
        # the LoRA adapter comes with the preset: r = 16, α = 32 on every Llama projection
        assert hp["lora"]["r"] == SMOLLM2_LORA["r"] == 16
        assert hp["lora"]["alpha"] == 32.0
        assert "q_proj" in hp["lora"]["target_modules"] and "down_proj" in hp["lora"]["target_modules"]
        assert hp["lr"] == preset_hyperparameters(method, "smollm2-135m-lora")["lr"]


def test_request_values_override_the_preset():
    hp = get_method("npo_gd").resolve_hyperparameters(
        {"preset": "smollm2-135m-lora", "lr": 1e-5, "lora": None})
    assert hp["lr"] == 1e-5 and hp["lora"] is None and hp["epochs"] == 5


def test_unknown_preset_is_rejected():
    with pytest.raises(UnlearningInputError, match="preset"):
        get_method("gd").resolve_hyperparameters({"preset": "gpt-9"})
