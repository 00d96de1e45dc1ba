"""Fixtures for the engine tests: a tokenizer and a "test"-preset base artifact built once per session."""
from __future__ import annotations

import pytest
import torch

from unlearning_engine.data import Example, format_example
from unlearning_engine.modeling import build_model, save_artifact, train_tokenizer

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

NAMES = ["Ada Brook", "Basil Crane", "Cora Dale", "Dario Finch", "Elena Gray", "Felix Hart",
         "Greta Ives", "Hugo Jade"]


def make_examples(n: int, prefix: str = "r") -> list[Example]:
    out = []
    for i in range(n):
        name = NAMES[i % len(NAMES)]
        out.append(Example(question=f"Where was {name} born, case {i}?",
                           answer=f"{name} was born in town {i} and writes book {i % 7}.",
                           record_id=f"{prefix}{i}"))
    return out


@pytest.fixture(scope="session")
def examples() -> list[Example]:
    return make_examples(48)


@pytest.fixture(scope="session")
def tokenizer(examples):
    texts = [format_example(e) for e in examples] + ["plain text record about nothing."]
    return train_tokenizer(texts, vocab_size=400)


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory, tokenizer):
    d = tmp_path_factory.mktemp("base")
    save_artifact(build_model(tokenizer, "test", seed=0), tokenizer, d)
    return d


@pytest.fixture(scope="session")
def served_dir(tmp_path_factory, tokenizer, examples, base_dir):
    """Base fine-tuned briefly on all examples (stands in for the serving model)."""
    from unlearning_engine.modeling import load_artifact
    from unlearning_engine.training import train_causal_lm
    model, tok = load_artifact(base_dir)
    train_causal_lm(model, tok, examples, epochs=2, lr=3e-3, batch_size=16)
    d = tmp_path_factory.mktemp("served")
    save_artifact(model, tok, d)
    return d
