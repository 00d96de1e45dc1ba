"""LoRA through peft (Hu et al., "LoRA", arXiv 2106.09685) for every weight-changing method.

The model is placed on its device *before* wrapping (DESIGN §6 pitfalls). The reference model of
KL/NPO objectives is the base with the adapters disabled (``with model.disable_adapter():``), so no
second copy of the weights is held. The saved artifact is the merged full model
(``merge_and_unload``), so downstream loading is unchanged; the adapter is saved alongside in
``<output_dir>/adapter`` (peft format, loadable with ``PeftModel.from_pretrained(base, dir)``).
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch

from .errors import UnlearningInputError

ADAPTER_DIR = "adapter"


@contextlib.contextmanager
def _quiet_peft_checkpointing_probe():
    """peft (0.21) reads ``model.is_gradient_checkpointing`` when it wraps a model, which
    transformers 5 deprecates in favour of ``is_activation_checkpointing``; the value read is the
    same (False: we never enable checkpointing), so the FutureWarning is about peft's code, not
    ours. Scoped to the wrapping call and this message only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning,
                                message="`is_gradient_checkpointing` is deprecated")
        yield


def load_adapter(model, adapter_dir: str | Path):
    """``PeftModel.from_pretrained(model, adapter_dir)`` (an adapter saved by
    :func:`save_adapter`), in eval mode."""
    from peft import PeftModel

    with _quiet_peft_checkpointing_probe():
        return PeftModel.from_pretrained(model, str(adapter_dir)).eval()


def wrap_lora(model, cfg: dict):
    """``PeftModel`` with a fresh LoRA adapter ``default`` (B = 0, so outputs are unchanged at
    step 0); ``cfg`` = validated ``{"r", "alpha", "dropout", "target_modules"}``.

    Raises:
        UnlearningInputError: no module of the model matches ``target_modules``.
    """
    from peft import LoraConfig, get_peft_model

    lc = LoraConfig(r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                    target_modules=list(cfg["target_modules"]), bias="none", task_type="CAUSAL_LM")
    try:
        with _quiet_peft_checkpointing_probe():
            return get_peft_model(model, lc)
    except ValueError as exc:
        raise UnlearningInputError(f"LoRA: {exc}") from None


def is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def save_adapter(model, out_dir: str | Path) -> Path:
    """Save the adapter of a PeftModel to ``out_dir/adapter``; returns that path."""
    d = Path(out_dir) / ADAPTER_DIR
    model.save_pretrained(str(d))
    return d


def merge(model):
    """Plain transformers model with the adapter merged into the weights (``merge_and_unload``)."""
    return model.merge_and_unload()


def unload(model):
    """Plain transformers model with the adapter removed *without* merging (the base weights)."""
    return model.unload()


@contextlib.contextmanager
def reference_of(model, frozen_ref=None):
    """Context yielding the reference model π_ref: ``frozen_ref`` when given (full-parameter
    training), else the LoRA base with adapters disabled. Runs under ``torch.no_grad()``."""
    with torch.no_grad():
        if frozen_ref is not None:
            yield frozen_ref
        else:
            with model.disable_adapter():
                yield model
