"""Checking and importing an operator's model artifact (issue 14). No database access.

Accepted sources: an artifact URI of the store (``file://…`` or ``s3://bucket/prefix`` with or
without the store's ``MANIFEST.json``), or in embedded mode a local Hugging Face directory. The
directory holds ``config.json``, ``model.safetensors`` and the tokenizer files, or a GGUF file
(``gguf_file=``) that is dequantised into a plain safetensors artifact through transformers (the
same route as ``unlearning_engine.modeling.export_smollm2``, DESIGN §10).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings

from .artifacts import MANIFEST, ArtifactStoreError, artifact_local_dir, artifact_store, file_sha256


class OnboardingError(ValueError):
    """The artifact cannot be registered (the API answers 400 with the message)."""


def _download_s3_prefix(uri: str, dest: Path) -> Path:
    """Download every object under ``s3://bucket/prefix/`` into ``dest`` (a plain HF directory upload)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urlparse(uri)
    prefix = parsed.path.strip("/") + "/"
    client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    try:
        found = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix):]
                if not rel or rel.endswith("/"):
                    continue
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                client.download_file(parsed.netloc, obj["Key"], str(dest / rel))
                found += 1
    except (BotoCoreError, ClientError) as exc:
        raise OnboardingError(f"artifact {uri} cannot be reached: {exc}") from exc
    if not found:
        raise OnboardingError(f"artifact {uri} is empty or missing")
    return dest


def _source_dir(uri: str, tmp: Path) -> Path:
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        try:
            return artifact_local_dir(uri)
        except ArtifactStoreError as exc:
            if "MANIFEST" not in str(exc) and "missing" not in str(exc):
                raise OnboardingError(str(exc)) from exc
        return _download_s3_prefix(uri, tmp / "download")
    if scheme in ("", "file"):
        if urlparse(settings.ARTIFACT_STORE_URL).scheme != "file":
            raise OnboardingError("local model paths are accepted in embedded mode only; use an s3:// URI")
        try:
            path = Path(urlparse(uri).path if scheme else uri)
            ok = path.is_absolute() and path.is_dir()
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise OnboardingError(f"model directory {uri} does not exist (an absolute path is required)")
        return path
    raise OnboardingError(f"unsupported artifact URI scheme '{scheme}' (use s3://, file:// or a local path)")


def gguf_export(src_dir: Path, gguf_file: str, out_dir: Path) -> Path:
    """Dequantise ``src_dir/gguf_file`` into a plain ``LlamaForCausalLM`` safetensors artifact.

    Raises:
        OnboardingError: the GGUF file is missing or transformers/gguf cannot read it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if not (src_dir / gguf_file).is_file():
        raise OnboardingError(f"GGUF file {gguf_file} not found in the model directory")
    try:
        tok = AutoTokenizer.from_pretrained(str(src_dir), gguf_file=gguf_file, local_files_only=True)
        src = AutoModelForCausalLM.from_pretrained(str(src_dir), gguf_file=gguf_file, local_files_only=True,
                                                   dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 — any reader failure is a 400 with its reason
        raise OnboardingError(f"the GGUF weights do not load: {type(exc).__name__}: {exc}") from exc
    cfg = LlamaConfig.from_dict({k: v for k, v in src.config.to_dict().items() if k != "quantization_config"})
    plain = LlamaForCausalLM(cfg)
    missing, unexpected = plain.load_state_dict(src.state_dict(), strict=False)
    if cfg.tie_word_embeddings:
        plain.tie_weights()
        missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise OnboardingError(f"GGUF export: missing tensors {missing[:5]}, unexpected {unexpected[:5]}")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    plain.generation_config.pad_token_id = tok.pad_token_id
    plain.float().eval().save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir


def classifier_artifact_inspect(local_dir: Path, *, family: str, corpus=None) -> dict:
    """Load a classifier artifact (issue 19) and check it against its family and corpus.

    Checks: the weights load strictly into the config's network; the config's family is ``family``;
    with ``corpus``, every training record has ``n_features`` features and a label below ``n_classes``
    (a label outside the class list is refused).

    Raises:
        OnboardingError: with the first problem.
    """
    from unlearning_engine.errors import UnlearningInputError
    from unlearning_engine.families.classifier.model import load_classifier

    try:
        model = load_classifier(local_dir)
    except UnlearningInputError as exc:
        raise OnboardingError(f"the weights do not load: {exc}") from exc
    cfg = model.cfg
    if cfg.family != family:
        raise OnboardingError(f"the artifact is a {cfg.family} (classifier.json), not a {family}")
    if corpus is not None:
        for rec in corpus.records.filter(split="train").only("index", "features", "label").iterator(chunk_size=2000):
            if rec.features is None or len(rec.features) != cfg.n_features:
                raise OnboardingError(f"training record {rec.index} has {0 if rec.features is None else len(rec.features)} "
                                      f"features; the model takes {cfg.n_features}")
            if not 0 <= int(rec.label) < cfg.n_classes:
                raise OnboardingError(f"training record {rec.index} has label {rec.label}, outside the model's "
                                      f"{cfg.n_classes} classes")
    return {"architecture": f"{cfg.arch}:{cfg.family}", "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": cfg.n_classes, "tokenizer": "none (classifier)"}


def model_artifact_inspect(local_dir: Path, *, vocab_like: dict | None = None) -> dict:
    """Load the artifact and check its tokenizer against the model's vocabulary.

    Checks: the weights load (``unlearning_engine.modeling.load_artifact``); every tokenizer id
    fits the input embedding (``len(tokenizer) ≤ rows``); the config's ``vocab_size`` equals the
    embedding rows; the EOS id of config and tokenizer agree when both are set; with
    ``vocab_like`` (the target's inspection), a base must have the same vocabulary size.

    Returns ``{architecture, parameters, vocab_size, tokenizer}``.

    Raises:
        OnboardingError: weights that do not load, or a tokenizer/vocabulary mismatch.
    """
    from unlearning_engine.modeling import load_artifact

    try:
        model, tokenizer = load_artifact(local_dir, with_eco=False)
    except Exception as exc:  # noqa: BLE001 — any load failure is a 400 with its reason
        raise OnboardingError(f"the weights do not load: {type(exc).__name__}: {str(exc)[:300]}") from exc
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise OnboardingError(f"the tokenizer does not match the model: it has {len(tokenizer)} tokens, "
                              f"the model's embedding {rows} rows")
    if getattr(model.config, "vocab_size", rows) != rows:
        raise OnboardingError(f"config vocab_size {model.config.vocab_size} != embedding rows {rows}")
    cfg_eos, tok_eos = getattr(model.config, "eos_token_id", None), tokenizer.eos_token_id
    if isinstance(cfg_eos, int) and tok_eos is not None and cfg_eos != tok_eos:
        raise OnboardingError(f"the tokenizer does not match the model: EOS id {tok_eos} != config {cfg_eos}")
    if vocab_like is not None and vocab_like["vocab_size"] != rows:
        raise OnboardingError(f"the base's vocabulary ({rows}) differs from the model's ({vocab_like['vocab_size']})")
    return {"architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": rows, "tokenizer": f"{type(tokenizer).__name__}, {len(tokenizer)} tokens"}


def model_artifact_import(uri: str, expected_sha256: str, *, key: str, gguf_file: str = "",
                          vocab_like: dict | None = None, family: str = "causal_lm", corpus=None) -> dict:
    """Verify, inspect and copy an artifact into the store under ``key``.

    ``expected_sha256`` is the sha256 of ``model.safetensors`` (or of the GGUF file with
    ``gguf_file``); the registered ``weights_sha256`` is that of the stored safetensors.

    Returns the inspection plus ``uri`` and ``weights_sha256``.

    Raises:
        OnboardingError: missing sha256, mismatch, missing weights, load or tokenizer failure,
            unreachable source.
    """
    expected = (expected_sha256 or "").strip().lower()
    if len(expected) != 64:
        raise OnboardingError(f"a 64-hex-digit sha256 of the weights is required for {uri}")
    with tempfile.TemporaryDirectory(dir=settings.VAR_DIR) as tmp:
        tmp = Path(tmp)
        src = _source_dir(uri, tmp)
        weights = src / (gguf_file or "model.safetensors")
        if not weights.is_file():
            raise OnboardingError(f"{uri} has no {weights.name}")
        actual = file_sha256(weights)
        if actual != expected:
            raise OnboardingError(f"sha256 mismatch for {uri}/{weights.name}: {actual} != given {expected}")
        if gguf_file:
            src = gguf_export(src, gguf_file, tmp / "export")
        info = (model_artifact_inspect(src, vocab_like=vocab_like) if family == "causal_lm"
                else classifier_artifact_inspect(src, family=family, corpus=corpus))
        stage = tmp / "stage"
        shutil.copytree(src, stage, ignore=shutil.ignore_patterns(MANIFEST, "*.gguf"))
        info["uri"] = artifact_store().put_dir(stage, key)
        info["weights_sha256"] = file_sha256(stage / "model.safetensors")
    return info
