"""Target-model registration and exact-retrain references."""
from __future__ import annotations

from django.db import transaction

from ..audit import audit_event_record
from ..models import (
    ModelVersion,
    TargetModel,
    TrainingCorpus,
)
from .common import ServiceError

# --- models and corpora ---------------------------------------------------------------------------

def model_register(
    *,
    actor,
    name: str,
    corpus: TrainingCorpus,
    architecture: str,
    tokenizer: str,
    training_recipe: dict,
    artifact_uri: str,
    weights_sha256: str,
    base_artifact_uri: str = "",
    base_sha256: str = "",
    dp_base_artifact_uri: str = "",
    dp_base_sha256: str = "",
    privacy_ledger: dict | None = None,
) -> TargetModel:
    """Register a target model with its original version (sequence 0, serving)."""
    with transaction.atomic():
        model = TargetModel.objects.create(
            name=name, corpus=corpus, architecture=architecture, tokenizer=tokenizer,
            training_recipe=training_recipe, base_artifact_uri=base_artifact_uri, base_sha256=base_sha256,
            dp_base_artifact_uri=dp_base_artifact_uri, dp_base_sha256=dp_base_sha256,
            privacy_ledger=privacy_ledger or {},
        )
        version = ModelVersion.objects.create(
            model=model, role=ModelVersion.ROLE_PUBLISHED, sequence=0, is_serving=True,
            artifact_uri=artifact_uri, weights_sha256=weights_sha256,
        )
        audit_event_record(actor=actor, verb="model.registered", obj=model,
                           after={"name": name, "version": version.pk, "weights_sha256": weights_sha256,
                                  "dp_base_sha256": dp_base_sha256, "privacy_ledger": privacy_ledger or {}})
    return model


def model_register_reference(
    *, actor, model: TargetModel, artifact_uri: str, weights_sha256: str, forget_set_sha256: str, seed: int = 0
) -> ModelVersion:
    """Register an exact-retrain reference model for a forget set (PrivLeak reference, DESIGN §7);
    ``seed`` is its training seed (several seeds measure the retrain's own variation)."""
    with transaction.atomic():
        version = ModelVersion.objects.create(
            model=model, role=ModelVersion.ROLE_REFERENCE, artifact_uri=artifact_uri,
            weights_sha256=weights_sha256, forget_set_sha256=forget_set_sha256,
        )
        audit_event_record(actor=actor, verb="model_version.reference_registered", obj=version,
                           after={"forget_set_sha256": forget_set_sha256, "weights_sha256": weights_sha256,
                                  "seed": seed})
    return version


# --- onboarding: registration of an existing model, method checks, preparation (issue 14) --------

REFERENCE_POLICIES = ("none", "per_request", "calibration_only")
#: most exact retrains (training seeds) one reference preparation trains
MAX_REFERENCE_SEEDS = 8


def model_dp2_unavailable_reason(model: TargetModel) -> str:
    """Why ``dp2`` cannot run against ``model`` ("" when it can): DP2 restarts from the DP base
    (DESIGN §6 step 3), so a model without a registered DP base and privacy ledger cannot use it."""
    if not model.dp_base_artifact_uri or not model.dp_base_sha256:
        return (f"model '{model.name}' has no DP base: an ML operator must prepare one "
                f"(POST /api/v1/models/{model.pk}/prepare/ with kind=dp_base) before dp2 can be chosen")
    if not (model.privacy_ledger or {}).get("epsilon"):
        return f"model '{model.name}' has a DP base without a privacy ledger; re-run its dp_base preparation"
    return ""


def model_family_check(model: TargetModel, method: str) -> None:
    """Refuse a method that does not serve the model's family (DESIGN §11; issue 19), e.g. ``eco``
    or ``whp`` for a classifier; the message names the families the method supports.

    Raises:
        ServiceError: unknown method, or a method/family mismatch (the API answers 400).
    """
    from unlearning_engine.methods import available_methods, method_families

    families = method_families(method)
    if not families:
        raise ServiceError(f"unknown method '{method}'; available for {model.family}: "
                           f"{', '.join(available_methods(model.family))}")
    if model.family not in families:
        raise ServiceError(
            f"method '{method}' does not serve the {model.family} family of model '{model.name}'; it supports: "
            f"{', '.join(families)}. Methods for {model.family}: {', '.join(available_methods(model.family))}")


def model_method_check(model: TargetModel, method: str) -> None:
    """Refuse a method the model cannot serve (called by the approval, comparison and retry services).

    Raises:
        ServiceError: a method of another model family (:func:`model_family_check`); ``dp2`` on a
            model without a DP base (with the reason); ``retrain`` on a model without a pre-trained base.
    """
    model_family_check(model, method)
    if method == "dp2":
        reason = model_dp2_unavailable_reason(model)
        if reason:
            raise ServiceError(f"dp2 is not available: {reason}")
    if method == "retrain" and not model.base_artifact_uri:
        raise ServiceError(f"retrain is not available: model '{model.name}' has no registered pre-trained base")


def model_register_from_artifact(
    *, actor, name: str, corpus: TrainingCorpus, artifact_uri: str, weights_sha256: str,
    base_artifact_uri: str = "", base_sha256: str = "", training_recipe: dict | None = None,
    reference_policy: str = "per_request", gguf_file: str = "", base_gguf_file: str = "",
    family: str = "causal_lm",
) -> TargetModel:
    """Register an operator's existing model (HF directory with safetensors, or a GGUF file).

    Both artifacts are checked before anything is written (:func:`requests_app.onboarding.model_artifact_inspect`):
    sha256 (of ``model.safetensors``, or of the GGUF file), the weights load, the tokenizer fits the
    vocabulary. They are then copied into the artifact store (``models/<name>/v0`` and ``/base``)
    so that every worker can fetch them, and registered with version 0 serving (one audit event).

    Raises:
        ServiceError: name taken, unknown policy, corpus without records, bad sha256, weights that
            do not load, tokenizer/vocabulary mismatch, unreachable or missing artifact.
    """
    from ..artifacts import ArtifactStoreError
    from ..onboarding import OnboardingError, model_artifact_import

    if TargetModel.objects.filter(name=name).exists():
        raise ServiceError(f"a model named '{name}' already exists")
    if reference_policy not in REFERENCE_POLICIES:
        raise ServiceError(f"reference_policy must be one of {', '.join(REFERENCE_POLICIES)}")
    if not corpus.records.filter(split="train").exists():
        raise ServiceError(f"corpus '{corpus.name}' has no training records")
    classifier = family != "causal_lm"
    if classifier != (corpus.kind in (corpus.KIND_IMAGE, corpus.KIND_TABULAR)):
        raise ServiceError(f"a {family} model needs a corpus of "
                           f"{'feature rows with labels' if classifier else 'text or question/answer records'}; "
                           f"corpus '{corpus.name}' is '{corpus.kind}'")
    try:
        target = model_artifact_import(artifact_uri, weights_sha256, key=f"models/{name}/v0", gguf_file=gguf_file,
                                       family=family, corpus=corpus if classifier else None)
        base = (model_artifact_import(base_artifact_uri, base_sha256, key=f"models/{name}/base",
                                      gguf_file=base_gguf_file, vocab_like=target, family=family)
                if base_artifact_uri else None)
    except (OnboardingError, ArtifactStoreError) as exc:
        raise ServiceError(str(exc)) from exc
    recipe = dict(training_recipe or {})
    recipe.setdefault("source", {"artifact_uri": artifact_uri, "sha256": weights_sha256, "gguf_file": gguf_file})
    with transaction.atomic():
        model = model_register(
            actor=actor, name=name, corpus=corpus, architecture=target["architecture"],
            tokenizer=target["tokenizer"], training_recipe=recipe, artifact_uri=target["uri"],
            weights_sha256=target["weights_sha256"], base_artifact_uri=base["uri"] if base else "",
            base_sha256=base["weights_sha256"] if base else "",
        )
        TargetModel.objects.filter(pk=model.pk).update(reference_policy=reference_policy, family=family)
        model.refresh_from_db()
        audit_event_record(actor=actor, verb="model.artifacts_verified", obj=model, after={
            "target": {k: target[k] for k in ("uri", "weights_sha256", "parameters", "vocab_size")},
            "base": {k: base[k] for k in ("uri", "weights_sha256", "parameters")} if base else None,
            "reference_policy": reference_policy, "family": family})
    return model


def _dp_privacy_unit_count(model: TargetModel) -> tuple[str, int]:
    from ..models import TrainingRecord

    unit = ((model.training_recipe or {}).get("dp_base") or {}).get("privacy_unit", "record")
    records = TrainingRecord.objects.filter(corpus=model.corpus, split="train", forgotten_by__isnull=True)
    if unit == "subject":
        return unit, records.exclude(subject=None).values("subject").distinct().count()
    return unit, records.count()


def model_prepare(*, actor, model: TargetModel, kind: str, params: dict | None = None):
    """Queue a preparation of ``model``: ``dp_base`` (DESIGN §6 step 1) or ``reference`` (exact
    retrain for a forget set, DESIGN §7), after the checks that need no training.

    ``reference`` params: ``record_ids`` (training records of the model's corpus) or ``subject_id``
    (a DataSubject public id: all its records), ``purpose`` (``request`` or ``calibration``) and
    ``seeds`` (1–8 exact retrains with training seeds 0 … seeds−1; default the recipe's
    ``reference_seeds``, else 1).

    Raises:
        ServiceError: unknown kind; dp_base without a pre-trained base or on fewer privacy units
            than ``unlearning_engine.dp.MIN_DP_RECORDS``; reference under policy ``none``, a
            non-calibration reference under ``calibration_only``, an empty or foreign forget set.
    """
    from unlearning_engine.dp import MIN_DP_RECORDS

    from .preparation import preparation_create

    params = dict(params or {})
    if kind == "dp_base":
        if not model.base_artifact_uri:
            raise ServiceError(f"model '{model.name}' has no registered pre-trained base to train the DP base from")
        unit, n = _dp_privacy_unit_count(model)
        if n < MIN_DP_RECORDS:
            raise ServiceError(f"a DP base needs at least {MIN_DP_RECORDS} {unit}s in the corpus; "
                               f"'{model.corpus.name}' has {n}")
    elif kind == "reference":
        params.update(_reference_params(model, params))
    return preparation_create(actor=actor, kind=kind, model=model, params=params)


def _reference_params(model: TargetModel, params: dict) -> dict:
    from ..models import DataSubject, TrainingRecord
    from .common import forget_set_digest

    purpose = params.get("purpose") or "request"
    if purpose not in ("request", "calibration"):
        raise ServiceError("purpose must be 'request' or 'calibration'")
    if model.reference_policy == "none":
        raise ServiceError(f"model '{model.name}' has reference_policy 'none': no exact-retrain reference is trained")
    if model.reference_policy == "calibration_only" and purpose != "calibration":
        raise ServiceError(f"model '{model.name}' has reference_policy 'calibration_only': "
                           "only calibration references (purpose=calibration) are trained")
    if not model.base_artifact_uri:
        raise ServiceError(f"model '{model.name}' has no registered pre-trained base to retrain from")
    records = TrainingRecord.objects.filter(corpus=model.corpus, split="train")
    if params.get("subject_id"):
        subject = DataSubject.objects.filter(public_id=params["subject_id"]).first()
        if subject is None:
            raise ServiceError(f"no data subject {params['subject_id']}")
        records = records.filter(subject=subject)
    elif params.get("record_ids"):
        ids = sorted({int(i) for i in params["record_ids"]})
        records = records.filter(pk__in=ids)
        if records.count() != len(ids):
            raise ServiceError(f"some of the records {ids[:10]} are not training records of model '{model.name}'")
    else:
        raise ServiceError("a reference needs record_ids or subject_id (its forget set)")
    rows = list(records.values_list("pk", "sha256"))
    if not rows:
        raise ServiceError("the forget set is empty")
    seeds = params.get("seeds") or (model.training_recipe or {}).get("reference_seeds") or 1
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_REFERENCE_SEEDS:
        raise ServiceError(f"seeds must be an integer from 1 to {MAX_REFERENCE_SEEDS}, got {seeds!r}")
    return {"record_ids": [pk for pk, _ in rows], "purpose": purpose, "seeds": seeds,
            "forget_set_sha256": forget_set_digest([sha for _, sha in rows])}
