"""Target-model registration and exact-retrain references."""
from __future__ import annotations

from django.db import transaction

from ..audit import audit_event_record
from ..models import (
    ModelVersion,
    TargetModel,
    TrainingCorpus,
)

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
    *, actor, model: TargetModel, artifact_uri: str, weights_sha256: str, forget_set_sha256: str
) -> ModelVersion:
    """Register an exact-retrain reference model for a forget set (PrivLeak reference, DESIGN §7)."""
    with transaction.atomic():
        version = ModelVersion.objects.create(
            model=model, role=ModelVersion.ROLE_REFERENCE, artifact_uri=artifact_uri,
            weights_sha256=weights_sha256, forget_set_sha256=forget_set_sha256,
        )
        audit_event_record(actor=actor, verb="model_version.reference_registered", obj=version,
                           after={"forget_set_sha256": forget_set_sha256, "weights_sha256": weights_sha256})
    return version
