import math

import pytest
import torch

from unlearning_engine.dp import group_privacy, resolve_delta, train_dp_base
from unlearning_engine.errors import UnlearningInputError
from unlearning_engine.modeling import LlamaForCausalLM, load_artifact, weights_sha256


def test_group_privacy_values():
    assert group_privacy(1.0, 1e-5, 1) == (1.0, 1e-5)
    eps, delta = group_privacy(0.5, 1e-6, 3)
    assert eps == pytest.approx(1.5)
    assert delta == pytest.approx(3 * math.exp(1.0) * 1e-6)
    with pytest.raises(ValueError):
        group_privacy(1.0, 1e-5, 0)


def test_delta_default_and_rejection():
    assert resolve_delta(100, None) == pytest.approx(1e-3)
    with pytest.raises(UnlearningInputError):
        resolve_delta(100, 0.01)  # δ = 1/N


def test_dp_rejects_bad_delta_and_small_n(tmp_path, base_dir, examples):
    with pytest.raises(UnlearningInputError, match="delta"):
        train_dp_base(base_dir, examples, tmp_path / "o", target_epsilon=8, delta=1 / len(examples),
                      epochs=1, lr=1e-3, batch_size=8)
    with pytest.raises(UnlearningInputError, match="at least"):
        train_dp_base(base_dir, examples[:5], tmp_path / "o", target_epsilon=8, epochs=1, lr=1e-3,
                      batch_size=2)
    assert not (tmp_path / "o").exists()


def test_dp_training_ledger(tmp_path, base_dir, examples):
    seen = []
    led = train_dp_base(base_dir, examples, tmp_path / "dp", target_epsilon=8.0, epochs=1,
                        lr=1e-3, batch_size=8, max_physical_batch_size=4, progress=seen.append)
    assert 0 < led.epsilon <= 8.0
    assert led.delta == pytest.approx(1 / (10 * len(examples)))
    assert led.noise_multiplier > 0 and led.sample_rate == pytest.approx(8 / len(examples))
    assert led.steps == 6 and led.n_records == len(examples) and led.n_units == len(examples)
    # "auto": PRV needs less noise than RDP here, and RDP's ε at the chosen σ is above PRV's
    assert led.accountant == "prv" and led.epsilons["rdp"] > led.epsilons["prv"] == led.epsilon
    assert led.weights_sha256 == weights_sha256(tmp_path / "dp")
    assert len(seen) == led.steps
    d = led.to_dict()
    for k in ("target_epsilon", "epsilon", "delta", "noise_multiplier", "sample_rate", "steps",
              "epochs", "accountant", "max_grad_norm", "n_records", "weights_sha256"):
        assert d[k] is not None
    # the artifact loads strictly into a plain model (GradSampleModule unwrapped)
    model, _ = load_artifact(tmp_path / "dp")
    assert type(model) is LlamaForCausalLM
    plain = LlamaForCausalLM(model.config)
    plain.load_state_dict(model.state_dict(), strict=True)
    assert not any(k.startswith("_module") for k in model.state_dict())


def test_dp_handles_empty_poisson_batches(tmp_path, base_dir, examples):
    # q = 1/48: about a third of the Poisson batches are empty; each still counts as a step
    led = train_dp_base(base_dir, examples, tmp_path / "dp1", target_epsilon=8.0, epochs=1,
                        lr=1e-3, batch_size=1, seed=1)
    assert led.steps == len(examples)
    assert led.epsilon <= 8.0
    load_artifact(tmp_path / "dp1")


def test_dp_rejects_mixed_precision(tmp_path, base_dir, examples):
    for mp in ("bf16", "fp16"):
        with pytest.raises(UnlearningInputError, match="mixed precision"):
            train_dp_base(base_dir, examples, tmp_path / "o", target_epsilon=8, epochs=1, lr=1e-3,
                          batch_size=8, mixed_precision=mp)
    assert not (tmp_path / "o").exists()


def test_dp_lora_trains_only_the_adapter_and_saves_a_plain_model(tmp_path, base_dir, examples):
    """DP-SGD on a LoRA adapter (opacus over peft): the ledger records the adapter, ε ≤ target,
    the merged artifact loads strictly into a plain LlamaForCausalLM and differs from the base
    only in the adapted projections (embeddings and norms untouched)."""
    from safetensors.torch import load_file

    led = train_dp_base(base_dir, examples, tmp_path / "dpl", target_epsilon=8.0, epochs=1,
                        lr=5e-2, batch_size=8, lora={"r": 4, "alpha": 8})
    assert 0 < led.epsilon <= 8.0
    assert led.lora["r"] == 4 and led.lora["alpha"] == 8
    model, _ = load_artifact(tmp_path / "dpl")
    assert type(model) is LlamaForCausalLM
    before = load_file(str(base_dir / "model.safetensors"))
    after = load_file(str(tmp_path / "dpl" / "model.safetensors"))
    assert set(before) == set(after)  # no lora_A / lora_B keys left: merged
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("proj" in k for k in changed)
    assert not any("embed" in k or "norm" in k for k in changed)
