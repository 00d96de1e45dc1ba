import math

import pytest
import torch

from unlearning_engine.data import Example, format_example, format_prompt
from unlearning_engine.modeling import (
    build_model,
    count_parameters,
    load_artifact,
    save_artifact,
    weights_sha256,
)
from unlearning_engine.training import (
    IGNORE_INDEX,
    Progress,
    collate,
    encode_example,
    encode_examples,
    per_example_nll,
    train_causal_lm,
)


def test_test_preset_is_small(tokenizer):
    assert count_parameters(build_model(tokenizer, "test")) < 200_000


def test_unknown_preset(tokenizer):
    with pytest.raises(ValueError):
        build_model(tokenizer, "huge")


def test_tokenizer_specials_and_prompt_prefix(tokenizer, examples):
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3
    ex = examples[0]
    p = tokenizer(format_prompt(ex))["input_ids"]
    f = tokenizer(format_example(ex))["input_ids"]
    assert p[0] == tokenizer.bos_token_id
    assert f[: len(p)] == p  # generation prompt is an exact prefix of the training text


def test_qa_labels_supervise_answer_and_eos_only(tokenizer, examples):
    ex = examples[3]
    enc = encode_example(tokenizer, ex)
    n_prompt = len(tokenizer(format_prompt(ex))["input_ids"])
    answer_ids = list(enc.input_ids[n_prompt:-1])
    assert tokenizer.decode(answer_ids).strip() == ex.answer
    assert enc.input_ids[-1] == tokenizer.eos_token_id
    assert all(x == IGNORE_INDEX for x in enc.labels[:n_prompt])
    assert list(enc.labels[n_prompt:]) == answer_ids + [tokenizer.eos_token_id]


def test_plain_text_supervises_all_but_bos(tokenizer):
    enc = encode_example(tokenizer, Example(text="plain text record about nothing."))
    assert enc.labels[0] == IGNORE_INDEX
    assert list(enc.labels[1:]) == list(enc.input_ids[1:])


def test_padding_masked_by_attention_not_token_id(tokenizer, examples):
    enc = encode_examples(tokenizer, examples[:3] + [Example(question="Q?", answer="A.")])
    b = collate(enc, tokenizer.pad_token_id)
    L = max(len(e.input_ids) for e in enc)
    assert b["input_ids"].shape == (4, L)  # padded to the batch max only
    assert (b["labels"][b["attention_mask"] == 0] == IGNORE_INDEX).all()
    # a real EOS stays supervised even if pad id == eos id
    enc2 = [e for e in enc]
    b2 = collate(enc2, tokenizer.eos_token_id)
    for i, e in enumerate(enc2):
        assert b2["labels"][i, len(e.input_ids) - 1] == tokenizer.eos_token_id
        assert (b2["labels"][i, len(e.input_ids):] == IGNORE_INDEX).all()


def test_per_batch_padding_gives_same_loss_as_unbatched(tokenizer, examples, base_dir):
    model, _ = load_artifact(base_dir)
    exs = examples[:4] + [Example(question="Who?", answer="Nobody at all.")]
    enc = encode_examples(tokenizer, exs)
    with torch.no_grad():
        batched = per_example_nll(model, collate(enc, tokenizer.pad_token_id))
        single = torch.cat([per_example_nll(model, collate([e], tokenizer.pad_token_id)) for e in enc])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_save_load_round_trip(tmp_path, tokenizer, examples):
    model = build_model(tokenizer, "test", seed=1)
    sha = save_artifact(model, tokenizer, tmp_path / "a")
    assert sha == weights_sha256(tmp_path / "a") == weights_sha256(tmp_path / "a" / "model.safetensors")
    model2, tok2 = load_artifact(tmp_path / "a")
    ids = tokenizer(format_example(examples[0]), return_tensors="pt")["input_ids"]
    assert tok2(format_example(examples[0]), return_tensors="pt")["input_ids"].equal(ids)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model2(ids).logits)
    assert not model2.training


def test_load_missing_artifact(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_artifact(tmp_path)


def test_training_reduces_loss_and_reports_progress(tokenizer, examples):
    model = build_model(tokenizer, "test", seed=0)
    seen: list[Progress] = []
    st = train_causal_lm(model, tokenizer, examples[:16], epochs=3, lr=3e-3, batch_size=8,
                         progress=seen.append)
    assert st.steps == 6 and len(seen) == 6 and seen[-1].step == seen[-1].total == 6
    assert st.tokens > 0 and st.wall_seconds > 0 and math.isfinite(st.final_loss)
    assert seen[-1].loss < seen[0].loss
    assert all(p.eta_seconds >= 0 and p.tokens_per_s > 0 for p in seen)


def test_training_is_seeded(tokenizer, examples):
    outs = []
    for _ in range(2):
        m = build_model(tokenizer, "test", seed=0)
        train_causal_lm(m, tokenizer, examples[:8], epochs=1, lr=1e-3, batch_size=4, seed=3)
        outs.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(outs[0], outs[1])
