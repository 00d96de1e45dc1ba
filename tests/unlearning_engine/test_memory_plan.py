"""DP memory plan (issue 13 item 6 / issue 23 item 2): estimate terms and the physical-batch choice."""
import pytest

from unlearning_engine.errors import UnlearningInputError
from unlearning_engine.memory_plan import (
    CPU_ALLOCATOR_RETENTION,
    RUNTIME_OVERHEAD_BYTES,
    MemoryBudgetError,
    choose_physical_batch,
    dp_memory_breakdown,
    dp_memory_estimate,
    model_shape,
)

# SmolLM2-135M-like shape (config values of HuggingFaceTB/SmolLM2-135M)
SMOL = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True}
CFG = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
       "vocab_size": 512}


def test_parameter_count_of_a_llama_config_matches_smollm2():
    assert abs(model_shape(SMOL).total_params - 134_515_008) / 134_515_008 < 0.001


def test_breakdown_terms_are_the_documented_formulas():
    b, s, p = 4, 16, 10_000
    out = dp_memory_breakdown(CFG, p, b, s)
    total = model_shape(CFG).total_params
    assert out["weights"] == total * 4
    assert out["per_sample_gradients"] == b * p * 4
    assert out["gradients"] == out["optimizer_state"] == 2 * p * 4
    assert out["activations"] == 2 * (b * s * (10 * 32 + 4 * 64) + 2 * b * 2 * s * s) * 4
    assert out["logits"] == 3 * b * s * 512 * 4
    assert out["runtime_overhead"] == RUNTIME_OVERHEAD_BYTES
    tensors = sum(out[k] for k in ("weights", "gradients", "optimizer_state", "per_sample_gradients",
                                   "activations", "logits"))
    assert out["allocator_retention"] == int(CPU_ALLOCATOR_RETENTION * tensors)  # glibc keeps freed blocks (CPU)
    assert out["total"] == sum(v for k, v in out.items() if k != "total")
    gpu = dp_memory_breakdown(CFG, p, b, s, device="cuda")
    assert gpu["allocator_retention"] == 0 and gpu["total"] == out["total"] - out["allocator_retention"]


def test_per_sample_gradients_dominate_full_dp_on_smollm2():
    p = model_shape(SMOL).total_params
    out = dp_memory_breakdown(SMOL, p, 32, 128, device="cuda")
    assert out["per_sample_gradients"] == 32 * p * 4  # 17.2 GB
    assert out["per_sample_gradients"] > 0.5 * out["total"]


def test_estimate_accepts_a_torch_model():
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(4, 4)
    with pytest.raises(UnlearningInputError, match="config"):
        dp_memory_estimate(model, 20, 1, 8)


def test_choose_physical_batch_is_the_largest_that_fits():
    p = model_shape(SMOL).total_params
    budget = 16 * 2**30
    b = choose_physical_batch(budget, SMOL, p, 128)
    assert dp_memory_estimate(SMOL, p, b, 128) <= budget < dp_memory_estimate(SMOL, p, b + 1, 128)
    assert choose_physical_batch(10**15, SMOL, p, 128, max_batch=32) == 32


def test_choose_physical_batch_refuses_with_the_estimate_and_budget():
    p = model_shape(SMOL).total_params
    with pytest.raises(MemoryBudgetError, match=r"MiB even with a physical batch of 1.*budget of 1,024 MiB"):
        choose_physical_batch(2**30, SMOL, p, 512)
    with pytest.raises(UnlearningInputError):
        choose_physical_batch(0, SMOL, p, 512)
    with pytest.raises(UnlearningInputError):
        dp_memory_estimate(SMOL, p, 0, 512)


def test_django_plan_refuses_before_training_with_an_actionable_reason(settings):
    torch = pytest.importorskip("torch")  # noqa: F841
    from requests_app import services
    from requests_app.memory import dp_physical_batch_plan
    from unlearning_engine import Example
    from unlearning_engine.modeling import build_model, train_tokenizer

    examples = [Example(question=f"Who is author {i}?", answer=f"Author {i} writes novels.") for i in range(8)]
    tok = train_tokenizer([e.question + " " + e.answer for e in examples], vocab_size=300)
    model = build_model(tok, preset="test")
    settings.DP_MEMORY_BUDGET_BYTES = 10**12
    logs = []
    assert dp_physical_batch_plan(model=model, tokenizer=tok, examples=examples, expected_batch=16,
                                  log=logs.append) == 16
    assert "physical batch 16" in logs[0]
    settings.DP_MEMORY_BUDGET_BYTES = 2**20
    with pytest.raises(services.ServiceError, match="DP_MEMORY_BUDGET_BYTES"):
        dp_physical_batch_plan(model=model, tokenizer=tok, examples=examples, expected_batch=16)


def test_min_batch_is_kept_and_must_fit():
    p = model_shape(SMOL).total_params
    assert choose_physical_batch(10**15, SMOL, p, 128, max_batch=4, min_batch=10) == 10
    budget = dp_memory_estimate(SMOL, p, 12, 128)
    assert choose_physical_batch(budget, SMOL, p, 128, max_batch=32, min_batch=10) == 12
    with pytest.raises(MemoryBudgetError, match="a physical batch of 10 rows"):
        choose_physical_batch(dp_memory_estimate(SMOL, p, 9, 128), SMOL, p, 128, min_batch=10)
