"""Tokenizer, model presets and artifact (de)serialisation.

Artifacts are ``save_pretrained`` directories: ``config.json``, ``model.safetensors``
(weights, sha256 = artifact identity), ``generation_config.json`` and the tokenizer files.
Loading is strictly offline (``local_files_only=True``); nothing is ever fetched from the hub.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
WEIGHTS_NAME = "model.safetensors"

# Model presets (Llama architecture: RMSNorm, rotary positions -> no learned position
# embedding, so opacus needs no per-example position table; untied input/output embeddings
# because opacus per-sample gradients do not support weight tying).
PRESETS: dict[str, dict] = {
    # ~100k parameters with a 512-token vocabulary: unit tests.
    "test": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256),
    # Demo model (README / `manage.py demo`), sized for 2 CPU cores: see DEMO_RECIPE.
    "tiny": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512),
}

# Default vocabulary sizes of the tokenizer trained on the corpus, per preset.
PRESET_VOCAB = {"test": 512, "tiny": 2048}

# Demo recipe. Measured on 2 CPU cores, 600 TOFU QA records (30 authors incl. forget01),
# vocab 2048, "tiny" preset (1.38M params), ~62 tokens/record: non-private fine-tune
# ≈ 4.3 s/epoch -> target/retrain ≈ 70 s (16 epochs; greedy ROUGE-L on training questions 0.97);
# DP base ≈ 57 s (8 epochs, q=0.1, σ≈0.86, ε=8 achieved 7.997, δ=1/(10N));
# dp2 ≈ 51 s (12 epochs from BM, retain ROUGE-L 0.94 = 97% of served; 10 epochs only 0.55);
# npo_gd ≈ 4 s (50 steps; forget ROUGE-L 0.99 -> 0.17, retain 0.95).
# Keys map directly onto train_causal_lm / train_dp_base / method hyper-parameters.
DEMO_RECIPE: dict[str, dict] = {
    "tokenizer": {"vocab_size": 2048},
    "model": {"preset": "tiny"},
    # served model: base fine-tuned on the full corpus, non-private, until it memorises
    "target": {"epochs": 16, "lr": 3e-3, "batch_size": 16},
    # DP base (DP2Unlearning §6 step 1)
    "dp_base": {"target_epsilon": 8.0, "epochs": 8, "lr": 3e-3, "batch_size": 64,
                "max_grad_norm": 1.0},
    # exact retrain = same recipe as the served model on D_r
    "retrain": {"epochs": 16, "lr": 3e-3, "batch_size": 16},
    # DP2: BM fine-tuned on D_r with fewer epochs
    "dp2": {"epochs": 12, "lr": 3e-3, "batch_size": 16},
    "npo_gd": {"epochs": 10, "lr": 5e-4, "batch_size": 4, "beta": 0.1, "retain_weight": 1.0},
}


def train_tokenizer(texts: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``.

    Special tokens: ``<|bos|>`` (prepended by the post-processor), ``<|eos|>`` (appended by the
    training code after each record; generation stops on it) and ``<|pad|>``.
    The normaliser strips trailing whitespace so that the generation prompt
    ``"Question: q\\nAnswer: "`` tokenises to an exact prefix of the tokenised training text
    ``"Question: q\\nAnswer: a"`` (the space is then part of the first answer token ``"ĠThe"``).

    Args:
        texts: training texts (formatted records); must be non-empty.
        vocab_size: target vocabulary size including the 256 byte symbols and 3 special tokens.
    Returns:
        PreTrainedTokenizerFast with ``bos_token``, ``eos_token``, ``pad_token`` set, right padding.
    Raises:
        ValueError: empty ``texts`` or ``vocab_size`` < 300.
    """
    if not texts:
        raise ValueError("train_tokenizer needs at least one text")
    if vocab_size < 300:
        raise ValueError("vocab_size must be >= 300 (256 bytes + specials)")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFC(),
                                           normalizers.Replace(Regex(r"\s+\z"), "")])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=[BOS_TOKEN, EOS_TOKEN, PAD_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS_TOKEN)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN,
                                   pad_token=PAD_TOKEN, padding_side="right",
                                   model_max_length=PRESETS["tiny"]["max_position_embeddings"])
    return fast


def model_config(tokenizer, preset: str = "tiny") -> LlamaConfig:
    """LlamaConfig for ``preset`` with the tokenizer's vocabulary and special token ids.

    Raises:
        ValueError: unknown preset.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[preset]
    return LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                       tie_word_embeddings=False, attention_dropout=0.0, rms_norm_eps=1e-6,
                       rope_theta=10000.0, hidden_act="silu", initializer_range=0.02,
                       use_cache=True, **p)


def build_model(tokenizer, preset: str = "tiny", seed: int = 0) -> PreTrainedModel:
    """Freshly initialised (seeded) LlamaForCausalLM for ``preset``, fp32, eager attention, eval mode.

    Presets: ``"test"`` (~0.1M params, unit tests), ``"tiny"`` (demo, ~1.38M params with a
    2k vocabulary). See :data:`PRESETS`.
    """
    cfg = model_config(tokenizer, preset)
    cfg._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.float().eval()


def weights_sha256(path: str | Path) -> str:
    """Hex sha256 of the ``model.safetensors`` bytes; ``path`` is the artifact dir or the file."""
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_NAME
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_artifact(model, tokenizer, out_dir: str | Path) -> str:
    """Write ``model`` (safetensors) and ``tokenizer`` to ``out_dir``; return the weights sha256.

    A GradSampleModule (opacus) or peft wrapper must be unwrapped/merged by the caller;
    as a safety net an opacus ``_module`` attribute is unwrapped here.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "_module", model)
    hf_logging.disable_progress_bar()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return weights_sha256(out)


def load_artifact(path: str | Path, device: str | torch.device = "cpu"):
    """Load ``(model, tokenizer)`` from an artifact directory, offline, fp32, ``model.eval()``.

    Raises:
        FileNotFoundError: the directory or its ``model.safetensors`` is missing.
    """
    p = Path(path)
    if not (p / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in artifact directory {p}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(p), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True,
                                                 dtype=torch.float32, attn_implementation="eager")
    return model.to(device).eval(), tokenizer


def count_parameters(model) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
