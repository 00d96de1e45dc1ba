"""A registered model's tokenizer is public and its provenance is in the privacy ledger (issue 12 item 3)."""
from __future__ import annotations

import copy

import pytest

from requests_app import model_training, services
from requests_app.artifacts import artifact_fetch_verified
from requests_app.ingestion import read_jsonl
from tests.conftest import FIXTURE, TEST_AUTHORS, TEST_RECIPE
from unlearning_engine import Example
from unlearning_engine.provenance import read_provenance, tokenizer_sha256


def test_ledger_records_the_public_tokenizer_of_every_artifact(trained_artifacts, settings):
    settings.ARTIFACT_STORE_URL = f"file://{trained_artifacts['root']}"
    prov = trained_artifacts["privacy_ledger"]["tokenizer_provenance"]
    assert prov["kind"] == "public_corpus"
    assert prov["name"] == "wikitext2-bpe-384"
    assert [s["name"] for s in prov["trained_on"][:2]] == ["wikitext2/valid.txt", "wikitext2/test.txt"]
    for stage in ("base", "target", "dp_base"):
        d = artifact_fetch_verified(trained_artifacts[f"{stage}_uri"], trained_artifacts[f"{stage}_sha256"])
        assert tokenizer_sha256(d) == prov["sha256"], stage
        assert read_provenance(d) == prov, stage


def test_registered_model_states_its_tokenizer(target_model):
    prov = target_model.privacy_ledger["tokenizer_provenance"]
    assert target_model.tokenizer.startswith("byte-level BPE, vocabulary 384; public_corpus 'wikitext2-bpe-384'")
    assert prov["sha256"][:12] in target_model.tokenizer
    assert "tofu-test" not in target_model.tokenizer  # no longer "trained on '<corpus>'"


def test_tokenizer_is_the_same_with_and_without_the_forget_author(monkeypatch, settings, tmp_path):
    """model_artifacts_train builds the same vocabulary whatever the records (stopped after the tokenizer)."""
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path}"
    rows = read_jsonl(FIXTURE / "train.jsonl")[: 20 * TEST_AUTHORS]
    examples = [Example(question=r["question"], answer=r["answer"]) for r in rows]
    seen = []

    class Stop(Exception):
        pass

    def build_model(tokenizer, **kwargs):
        seen.append(tokenizer)
        raise Stop

    monkeypatch.setattr(model_training, "build_model", build_model)
    for subset in (examples, examples[:-20]):  # the last author is the forget set
        with pytest.raises(Stop):
            model_training.model_artifacts_train(examples=subset, name="t", recipe=copy.deepcopy(TEST_RECIPE))
    a, b = seen
    assert a.get_vocab() == b.get_vocab()
    assert a.tokenizer_provenance == b.tokenizer_provenance
    assert a.tokenizer_provenance["kind"] == "public_corpus"


def test_unknown_tokenizer_source_refused_before_training(settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path}"
    recipe = {**copy.deepcopy(TEST_RECIPE), "tokenizer_source": "tofu"}
    with pytest.raises(services.ServiceError, match="unknown public tokenizer source 'tofu'"):
        model_training.model_artifacts_train(examples=[], name="t", recipe=recipe)
    assert not any(tmp_path.iterdir())


def test_recipe_from_engine_names_the_public_source():
    assert model_training.DEMO_RECIPE["tokenizer_source"] == "wikitext2"
    assert model_training.DEMO_RECIPE["vocab_size"] == 2048


def test_exact_retrain_reference_ships_the_base_tokenizer(target_model, forget_subject):
    from requests_app.models import TrainingRecord

    ids = list(TrainingRecord.objects.filter(subject=forget_subject).values_list("pk", flat=True))
    version, _ = model_training.reference_train_and_register(model=target_model, record_ids=ids)
    d = artifact_fetch_verified(version.artifact_uri, version.weights_sha256)
    assert read_provenance(d) == target_model.privacy_ledger["tokenizer_provenance"]

    # a ledger naming another tokenizer: the reference is refused, not registered
    target_model.privacy_ledger = {**target_model.privacy_ledger,
                                   "tokenizer_provenance": {"kind": "public_corpus", "sha256": "0" * 64}}
    with pytest.raises(services.ServiceError, match="exact-retrain reference's tokenizer"):
        model_training.reference_train_and_register(model=target_model, record_ids=ids)
