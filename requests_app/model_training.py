"""Training and registering a target model, its DP base and exact-retrain references.

The heavy lifting is ``unlearning_engine``; this module moves artifacts into the store and registers
them through services (with their audit events). Used by the demo (which then onboards the trained
artifacts through the API like any operator, issue 14) and the test fixtures.
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

from django.conf import settings

from unlearning_engine import UnlearningRequest, run_unlearning
from unlearning_engine.modeling import DEMO_RECIPE as ENGINE_DEMO_RECIPE
from unlearning_engine.modeling import build_model, count_parameters, save_artifact
from unlearning_engine.provenance import describe, read_provenance, require_public_tokenizer
from unlearning_engine.public_tokenizer import DEFAULT_SOURCE, public_tokenizer
from unlearning_engine.training import train_causal_lm

from . import selectors, services
from .artifacts import artifact_fetch_verified, artifact_store
from .jobs import record_to_example
from .models import TrainingRecord
from .preparation import dp_base_train


def recipe_from_engine(engine_recipe: dict, seed: int = 0) -> dict:
    """The stored training recipe of a TargetModel from an engine recipe (``unlearning_engine.DEMO_RECIPE``).

    ``methods`` holds the per-method defaults a job starts from; a job's own hyper-parameters override them.
    """
    r = copy.deepcopy(engine_recipe)
    return {
        "preset": r["model"]["preset"],
        "vocab_size": r["tokenizer"]["vocab_size"],
        "tokenizer_source": r["tokenizer"].get("source", DEFAULT_SOURCE),
        "seed": seed,
        "reference_seeds": r.get("reference", {}).get("seeds", 1),
        "target": r["target"],
        "dp_base": r["dp_base"],
        "methods": {name: r[name] for name in ("retrain", "dp2", "npo_gd") if name in r},
    }


#: Recipe of the demo model (sizes measured by the engine to fit the README demo in 10 minutes on
#: 2 CPU cores; see ``unlearning_engine.modeling.DEMO_RECIPE``).
DEMO_RECIPE: dict = recipe_from_engine(ENGINE_DEMO_RECIPE)


def _timed(fn, *args, **kwargs):
    t0 = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - t0


def model_tokenizer(recipe: dict):
    """The public tokenizer of ``recipe`` (``tokenizer_source``, default WikiText-2; ``vocab_size``).

    Takes no training records: the vocabulary cannot depend on the corpus, the forget set included
    (issue 12 item 3). Its ``tokenizer_provenance`` is kind ``"public_corpus"``.

    Raises:
        services.ServiceError: unknown source, bad vocabulary size, or the public corpus is missing.
    """
    try:
        return public_tokenizer(int(recipe["vocab_size"]), recipe.get("tokenizer_source", DEFAULT_SOURCE))
    except (ValueError, FileNotFoundError) as exc:
        raise services.ServiceError(f"tokenizer: {exc}") from exc


def model_artifacts_train(*, examples: list, name: str, recipe: dict, log=lambda msg: None,
                          with_dp_base: bool = True, progress=None) -> dict:
    """Public tokenizer, then base, target (non-DP) and DP base; put them in the store. No database access.

    Returns a dict with the artifacts' URIs and sha256, the privacy ledger (with
    ``tokenizer_provenance``: kind, name, sha256 of tokenizer.json, source digests), the
    architecture, the tokenizer description and the timings (seconds) per stage.
    ``progress``: optional callback for the target's training steps. ``with_dp_base=False`` skips the DP base (the operator path prepares it later through a
    ``dp_base`` preparation job, issue 14).

    Raises:
        services.ServiceError: no public tokenizer for the recipe (before any training).
        unlearning_engine.UnlearningInputError: the tokenizer's provenance is not public.
    """
    store = artifact_store()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=settings.VAR_DIR) as tmp:
        tmp = Path(tmp)
        tokenizer, timings["tokenizer"] = _timed(model_tokenizer, recipe)
        require_public_tokenizer(tokenizer.tokenizer_provenance)
        base = build_model(tokenizer, preset=recipe["preset"], seed=recipe["seed"])
        base_sha = save_artifact(base, tokenizer, tmp / "base")
        log(f"base model: {count_parameters(base):,} parameters, vocabulary {len(tokenizer)}")
        target = copy.deepcopy(base)
        t = recipe["target"]
        stats, timings["target"] = _timed(
            train_causal_lm, target, tokenizer, examples, epochs=t["epochs"], lr=t["lr"],
            batch_size=t["batch_size"], seed=recipe["seed"], progress=progress,
        )
        target_sha = save_artifact(target, tokenizer, tmp / "target")
        log(f"target model trained: {stats.steps} steps, final loss {stats.final_loss:.3f}, {timings['target']:.0f} s")
        prefix = f"models/{name}"
        common = {"base_uri": store.put_dir(tmp / "base", f"{prefix}/base"), "base_sha256": base_sha,
                  "target_uri": store.put_dir(tmp / "target", f"{prefix}/v0"), "target_sha256": target_sha,
                  "architecture": type(target).__name__,
                  "tokenizer": describe(read_provenance(tmp / "base"), vocab_size=len(tokenizer)),
                  "tokenizer_provenance": read_provenance(tmp / "base"), "timings": timings}
        if not with_dp_base:
            return common
        d = recipe["dp_base"]
        # what the DP base ships, read back and checked against its tokenizer.json
        prov = require_public_tokenizer(read_provenance(tmp / "base"))
        ledger, timings["dp_base"] = _timed(dp_base_train, tmp / "base", examples, tmp / "dp_base", recipe=recipe,
                                            log=log)
        shipped = read_provenance(tmp / "dp_base")
        if shipped != prov:
            raise services.ServiceError(f"the DP base's tokenizer differs from the base's: {shipped}")
        log(f"DP base trained: ε={ledger.epsilon:.3f} (target {d['target_epsilon']}), δ={ledger.delta:.2e}, "
            f"σ={ledger.noise_multiplier:.3f}, {timings['dp_base']:.0f} s")
        return {**common, "dp_base_uri": store.put_dir(tmp / "dp_base", f"{prefix}/dp_base"),
                "dp_base_sha256": ledger.weights_sha256,
                "privacy_ledger": {**ledger.to_dict(), "tokenizer_provenance": prov}}


def model_register_artifacts(*, corpus, name: str, recipe: dict, artifacts: dict, actor="system"):
    """Register a target model from :func:`model_artifacts_train` output."""
    return services.model_register(
        actor=actor, name=name, corpus=corpus, architecture=artifacts["architecture"],
        tokenizer=artifacts["tokenizer"], training_recipe=recipe,
        artifact_uri=artifacts["target_uri"], weights_sha256=artifacts["target_sha256"],
        base_artifact_uri=artifacts["base_uri"], base_sha256=artifacts["base_sha256"],
        dp_base_artifact_uri=artifacts["dp_base_uri"], dp_base_sha256=artifacts["dp_base_sha256"],
        privacy_ledger=artifacts["privacy_ledger"],
    )


def model_train_and_register(
    *, corpus, name: str, recipe: dict | None = None, actor="system", log=lambda msg: None
) -> tuple:
    """Train base → target (non-DP) and the DP base on ``corpus``; register the target model.

    Returns ``(TargetModel, timings)`` with timings in seconds per stage.

    Raises:
        services.ServiceError: the corpus has no training records.
    """
    recipe = copy.deepcopy(recipe or DEMO_RECIPE)
    records = list(TrainingRecord.objects.filter(corpus=corpus, split=TrainingRecord.SPLIT_TRAIN)
                   .select_related("subject").order_by("index"))
    if not records:
        raise services.ServiceError(f"corpus '{corpus.name}' has no training records")
    artifacts = model_artifacts_train(examples=[record_to_example(r) for r in records], name=name, recipe=recipe,
                                      log=log)
    model = model_register_artifacts(corpus=corpus, name=name, recipe=recipe, artifacts=artifacts, actor=actor)
    return model, artifacts["timings"]


def _check_reference_tokenizer(model, reference_dir: Path) -> None:
    """The exact-retrain reference must ship the base's tokenizer (the one in the privacy ledger):
    a reference with another vocabulary would be neither exact nor comparable.

    Raises:
        services.ServiceError: the reference's tokenizer.json differs from the recorded one.
    """
    recorded = (model.privacy_ledger or {}).get("tokenizer_provenance")
    if not recorded:  # a model registered before tokenizer provenance was recorded
        return
    shipped = read_provenance(reference_dir)
    if shipped.get("sha256") != recorded.get("sha256"):
        raise services.ServiceError(
            f"the exact-retrain reference's tokenizer (sha256 {shipped.get('sha256', '')[:12]}, "
            f"{shipped['kind']}) is not the model's ({recorded.get('sha256', '')[:12]})")


def reference_train_and_register(*, model, record_ids: list[int], actor="system") -> tuple:
    """Exact ``retrain`` reference for the forget set ``record_ids`` (DESIGN §7 PrivLeak reference).

    Returns ``(ModelVersion, seconds)``.
    """
    forget_records = list(TrainingRecord.objects.filter(pk__in=record_ids).select_related("subject").order_by("pk"))
    if not forget_records:
        raise services.ServiceError("the forget set is empty")
    retain_records = TrainingRecord.objects.filter(
        corpus=model.corpus, split=TrainingRecord.SPLIT_TRAIN, forgotten_by__isnull=True
    ).exclude(pk__in=record_ids).select_related("subject")
    source = selectors.model_serving_version(model)
    source_dir = artifact_fetch_verified(source.artifact_uri, source.weights_sha256)
    base_dir = artifact_fetch_verified(model.base_artifact_uri, model.base_sha256)
    digest = services.forget_set_digest([r.sha256 for r in forget_records])
    with tempfile.TemporaryDirectory(dir=settings.VAR_DIR) as tmp:
        result, seconds = _timed(run_unlearning, UnlearningRequest(
            method="retrain", model_dir=str(source_dir), output_dir=str(Path(tmp) / "model"),
            forget=[record_to_example(r) for r in forget_records],
            retain=[record_to_example(r) for r in retain_records], base_dir=str(base_dir),
            hyperparameters=(model.training_recipe or {}).get("methods", {}).get("retrain", {}),
        ))
        _check_reference_tokenizer(model, Path(tmp) / "model")
        uri = artifact_store().put_dir(Path(tmp) / "model", f"models/{model.name}/references/{digest[:16]}")
    version = services.model_register_reference(
        actor=actor, model=model, artifact_uri=uri, weights_sha256=result.weights_sha256, forget_set_sha256=digest
    )
    return version, seconds
