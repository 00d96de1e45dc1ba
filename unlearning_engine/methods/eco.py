"""``eco``: embedding-corrupted prompts — inference-time suppression, weights unchanged.

Source: Liu et al., "Large Language Model Unlearning via Embedding-Corrupted Prompts",
arXiv 2406.07933, §3 (prompt classifier + corruption of the flagged prompts' input embeddings;
"zero-out top-k" corruption). See :mod:`unlearning_engine.eco` for the classifier and hooks.

Procedure: fit the classifier on the prompts of D_f (label 1) vs D_r (label 0); copy θ_o's
artifact byte-for-byte to ``output_dir`` and write ``eco.json`` next to it.
:func:`unlearning_engine.modeling.load_artifact` re-attaches the hooks when it finds ``eco.json``
(:func:`unlearning_engine.eco.load_eco_model` does it explicitly). ``changes_weights=False`` and
``details["suppression_only"]=True``: never certified as erasure (DESIGN §5).

Hyper-parameters: ``top_k`` embedding dimensions zeroed per prompt token (clamped to the hidden
size), ``threshold`` on the classifier probability, ``C`` inverse L2 regularisation of the
logistic regression.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ..data import format_prompt
from ..eco import ECO_FILE, EcoClassifier, fit_classifier
from ..hparams import v_fraction, v_preset
from ..modeling import WEIGHTS_NAME, weights_sha256
from ..presets import PRESET_HP
from .base import Method, UnlearningRequest, UnlearningResult


def prompt_text(ex) -> str:
    """What the model sees at inference for a record: the QA prompt, or a plain text's first
    200 characters."""
    return format_prompt(ex) if ex.is_qa else ex.text[:200]


class ECO(Method):
    name = "eco"
    description = "embedding-corrupted prompts: classifier + inference-time corruption (no weight change)"
    defaults = {"preset": "tiny", **PRESET_HP["tiny"]["eco"]}
    int_params = frozenset({"top_k"})
    validators = {"preset": v_preset, "threshold": v_fraction}
    changes_weights = False
    needs_model_dir = True

    def _run(self, req: UnlearningRequest, hp: dict) -> UnlearningResult:
        t0 = time.perf_counter()
        src, out = Path(req.model_dir), Path(req.output_dir)
        hidden = json.loads((src / "config.json").read_text()).get("hidden_size")
        top_k = min(hp["top_k"], hidden) if hidden else hp["top_k"]
        pos = [prompt_text(e) for e in req.forget]
        neg = [prompt_text(e) for e in req.retain]
        cfg = fit_classifier(pos, neg, C=hp["C"], threshold=hp["threshold"], top_k=top_k)
        clf = EcoClassifier(cfg)
        f_flags, r_flags = clf.flags(pos), clf.flags(neg)
        out.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.is_file() and f.name != ECO_FILE:
                shutil.copy2(f, out / f.name)
        (out / ECO_FILE).write_text(json.dumps(cfg, sort_keys=True), encoding="utf-8")
        sha = weights_sha256(out / WEIGHTS_NAME)
        return UnlearningResult(
            method=self.name, output_dir=str(out), weights_sha256=sha, hyperparameters=hp,
            steps=0, tokens=0, wall_seconds=time.perf_counter() - t0, changes_weights=False,
            details={"suppression_only": True, "certifiable_as_erasure": False,
                     "eco_config": ECO_FILE, "top_k_effective": top_k,
                     "n_forget": len(req.forget), "n_retain": len(req.retain),
                     "train_forget_flagged": sum(f_flags) / max(len(f_flags), 1),
                     "train_retain_flagged": sum(r_flags) / max(len(r_flags), 1),
                     "vocabulary_size": len(cfg["vocabulary"])})
