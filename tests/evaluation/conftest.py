"""Tiny offline models for the evaluation tests (no hub downloads)."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

CORPUS = [
    "Question: Who wrote the book?\nAnswer: The book was written by Jaime Vasquez in 1990.",
    "Question: Where was she born?\nAnswer: She was born in Santiago, Chile, to a family of tailors.",
    "Question: What genre does he write?\nAnswer: He writes true crime and historical fiction.",
    "Question: Which award did it win?\nAnswer: It won the Golden Quill award for debut novels.",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?,.;:'\"()-",
]


def _train_tokenizer(add_bos: bool) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 5, trainer=trainer)
    if add_bos:
        from tokenizers.processors import TemplateProcessing

        tok.post_processor = TemplateProcessing(
            single="<|bos|> $A", special_tokens=[("<|bos|>", tok.token_to_id("<|bos|>"))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>"
    )


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The models here are tiny: one intra-op thread is as fast on a quiet machine and keeps
    the suite fast when another process (e.g. training) is using the CPU cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bos_tokenizer():
    """Byte-level BPE tokenizer that prepends BOS (like Llama tokenizers)."""
    return _train_tokenizer(add_bos=True)


@pytest.fixture(scope="session")
def plain_tokenizer():
    """Byte-level BPE tokenizer without BOS (like GPT-2)."""
    return _train_tokenizer(add_bos=False)


@pytest.fixture(scope="session")
def tiny_llama(bos_tokenizer):
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(bos_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=bos_tokenizer.bos_token_id,
        eos_token_id=bos_tokenizer.eos_token_id,
        pad_token_id=bos_tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def tiny_gpt2(plain_tokenizer):
    torch.manual_seed(1)
    cfg = GPT2Config(
        vocab_size=len(plain_tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=plain_tokenizer.bos_token_id,
        eos_token_id=plain_tokenizer.eos_token_id,
        pad_token_id=plain_tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="session")
def qa_corpus():
    return list(CORPUS)
