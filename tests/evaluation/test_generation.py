import pytest

from evaluation.generation import (
    KNOWMEM_STOP_STRINGS,
    cut_at_stop_strings,
    greedy_generate,
    greedy_generate_detailed,
)

PROMPTS = [
    "Que",
    "Question: W",
    "Question: Who wrote the book",
    "She was born in Santiago",
    "The quick brown fox",
    "He writes",
    "It won the Golden",
    "Answer: The book was",
    "0123",
    "Question: Who wrote it?\nAnswer: ",
]


def test_stop_string_cut():
    assert cut_at_stop_strings("Paris.\n\nQuestion: x", KNOWMEM_STOP_STRINGS) == ("Paris.", True)
    assert cut_at_stop_strings("Paris\nQuestion: y", KNOWMEM_STOP_STRINGS) == ("Paris", True)
    assert cut_at_stop_strings("Paris Question: y", KNOWMEM_STOP_STRINGS) == ("Paris ", True)
    assert cut_at_stop_strings("Question: only", KNOWMEM_STOP_STRINGS) == ("", True)
    # earliest occurrence wins, whatever the order of the stop strings
    assert cut_at_stop_strings("a\nQuestion b\n\nc", KNOWMEM_STOP_STRINGS) == ("a", True)
    assert cut_at_stop_strings("no stop here\n", KNOWMEM_STOP_STRINGS) == ("no stop here\n", False)


@pytest.mark.parametrize("which", ["llama_bos", "gpt2_plain"])
def test_batched_equals_one_at_a_time(which, tiny_llama, bos_tokenizer, tiny_gpt2, plain_tokenizer):
    model, tok = (
        (tiny_llama, bos_tokenizer) if which == "llama_bos" else (tiny_gpt2, plain_tokenizer)
    )
    batched = greedy_generate_detailed(model, tok, PROMPTS, max_new_tokens=12, batch_size=5)
    single = [
        greedy_generate_detailed(model, tok, [p], max_new_tokens=12, batch_size=1)[0]
        for p in PROMPTS
    ]
    assert batched == single
    assert len(batched) == len(PROMPTS)
    assert all(len(g.token_ids) <= 12 for g in batched)
    assert greedy_generate(model, tok, PROMPTS, 12, batch_size=4) == [g.text for g in single]


def test_stop_strings_applied_during_generation(tiny_llama, bos_tokenizer):
    free = greedy_generate(tiny_llama, bos_tokenizer, PROMPTS, 16, batch_size=8)
    checked = 0
    for prompt, text in zip(PROMPTS, free, strict=True):
        if len(text) < 8:
            continue
        checked += 1
        stop = text[4:6]
        expected = text[: text.find(stop)]
        got = greedy_generate(
            tiny_llama, bos_tokenizer, [prompt, PROMPTS[0]], 16, batch_size=2, stop_strings=(stop,)
        )
        assert got[0] == expected
        assert stop not in got[0]
    assert checked >= 3


def test_bad_arguments(tiny_llama, bos_tokenizer, plain_tokenizer, tiny_gpt2):
    assert greedy_generate(tiny_llama, bos_tokenizer, [], 4) == []
    with pytest.raises(ValueError):
        greedy_generate(tiny_llama, bos_tokenizer, ["x"], 0)
    with pytest.raises(ValueError):
        greedy_generate(tiny_gpt2, plain_tokenizer, [""], 4)  # nothing to condition on
