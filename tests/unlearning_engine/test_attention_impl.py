"""Issue 22 item 1: models are loaded with PyTorch SDPA attention for evaluation; only DP-SGD
(opacus) training loads with eager attention (its memory plan models eager attention)."""
import pytest

from unlearning_engine import dp_train
from unlearning_engine.modeling import DP_ATTN_IMPLEMENTATION, load_artifact


def test_evaluation_loads_with_sdpa(base_dir):
    from evaluation.runner import load_model

    model, _ = load_artifact(base_dir)
    assert model.config._attn_implementation == "sdpa"
    model, _, info = load_model(base_dir)
    assert info["loader"] == "unlearning_engine.modeling.load_artifact"
    assert model.config._attn_implementation == "sdpa"
    eager, _ = load_artifact(base_dir, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"


def test_dp_training_loads_with_eager(monkeypatch, base_dir, tmp_path):
    seen = {}

    class Stop(Exception):
        pass

    def fake_load(path, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(dp_train, "load_artifact", fake_load)
    with pytest.raises(Stop):
        dp_train.run_dp_training(base_dir, [], tmp_path, [], None, lr=1e-3, seed=0,
                                 steps_per_epoch=1, max_physical_batch_size=1, progress=None,
                                 secure_mode=False, device="cpu")
    assert DP_ATTN_IMPLEMENTATION == "eager" and seen["attn_implementation"] == "eager"
