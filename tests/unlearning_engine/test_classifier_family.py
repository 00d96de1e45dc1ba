"""Classifier family (issue 19): losses on tiny inputs against hand computations, registry, artifacts."""
import math

import pytest
import torch

from unlearning_engine import UnlearningRequest, run_unlearning
from unlearning_engine.errors import MethodFamilyError, UnlearningInputError
from unlearning_engine.families.classifier.data import (
    LabeledExample,
    digits_corpus,
    examples_of_rows,
)
from unlearning_engine.families.classifier.model import (
    ClassifierConfig,
    build_classifier,
    load_classifier,
    save_classifier,
)
from unlearning_engine.methods import available_methods, get_method, method_families
from unlearning_engine.methods.classifier.ga import ga_loss
from unlearning_engine.methods.classifier.l1_sparse import (
    l1_objective_value,
    prunable_classifier_weights,
)
from unlearning_engine.methods.classifier.laf import alignment_loss, bounded_g, vae_loss
from unlearning_engine.methods.classifier.rl import random_other_labels
from unlearning_engine.methods.l1_sparse import gamma_schedule, magnitude_masks

TINY = ClassifierConfig(family="image_classifier", arch="cnn", input_shape=[1, 4, 4], n_classes=3, embed_dim=8,
                        input_scale=1.0)


def test_ga_loss_is_minus_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    y = torch.tensor([0, 1])
    # CE = (ln 2 + ln 4) / 2 (softmax of [ln3, 0] gives p_1 = 1/4)
    assert ga_loss(logits, y).item() == pytest.approx(-(math.log(2) + math.log(4)) / 2, abs=1e-6)


def test_l1_objective_and_gamma_schedule_by_hand():
    p = [torch.tensor([1.0, -2.0]), torch.tensor([[3.0, 0.0]])]
    assert l1_objective_value(torch.tensor(0.5), p, 2.0).item() == pytest.approx(0.5 + 2.0 * 6.0 / 4)
    assert gamma_schedule(1.0, 5, 1) == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_prune_first_masks_exact_fraction_of_extractor_weights():
    model = build_classifier(TINY, 0)
    named = prunable_classifier_weights(model)
    assert all(n.startswith("extractor.") and p.ndim >= 2 for n, p in named)
    masks = magnitude_masks(model, 0.5, named)
    total = sum(m.numel() for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == int(0.5 * total)


def test_random_labels_always_differ():
    y = torch.tensor([0, 1, 2] * 20)
    y2 = random_other_labels(y, 3, torch.Generator().manual_seed(0))
    assert bool((y2 != y).all()) and int(y2.min()) >= 0 and int(y2.max()) <= 2


def test_vae_loss_by_hand():
    z = torch.tensor([[1.0, 2.0]])
    recon = torch.tensor([[0.0, 2.0]])
    mu = torch.tensor([[1.0]])
    logvar = torch.tensor([[0.0]])
    # rec = 1; KL = -0.5 (1 + 0 - 1 - 1) = 0.5; total = 1 + 0.1 * 0.5
    assert vae_loss(z, recon, mu, logvar, 0.1).item() == pytest.approx(1.05)


def test_bounded_g_and_alignment_loss_by_hand():
    assert bounded_g(torch.tensor(1.0)).item() == pytest.approx(math.exp(0.5))
    a = torch.tensor([[1.0, 0.0]])
    neg = torch.tensor([[0.0, 1.0]])
    # cos(pos) = 1, cos(neg) = 0, τ = 1: −log(e / (e + 1))
    assert alignment_loss(a, a, neg, 1.0).item() == pytest.approx(-math.log(math.e / (math.e + 1)))


def test_registry_declares_families_and_refuses_a_mismatch():
    assert method_families("eco") == ["causal_lm"] and method_families("whp") == ["causal_lm"]
    assert {"retrain", "dp2", "ft", "ga", "rl", "l1_sparse", "laf", "laf_r"} <= set(available_methods("image_classifier"))
    assert "laf" not in available_methods("causal_lm")
    with pytest.raises(MethodFamilyError, match="supports: causal_lm"):
        get_method("eco", "image_classifier")
    with pytest.raises(MethodFamilyError, match="image_classifier, tabular_classifier"):
        get_method("laf", "causal_lm")


def test_forward_contract_and_safetensors_roundtrip(tmp_path):
    model = build_classifier(TINY, 0)
    logits, emb = model(torch.rand(5, 16))
    assert logits.shape == (5, 3) and emb.shape == (5, 8)
    sha = save_classifier(model, tmp_path / "m")
    again = load_classifier(tmp_path / "m")
    x = torch.rand(2, 16)
    assert torch.equal(again(x)[0], model.eval()(x)[0]) and len(sha) == 64


def test_digits_subjects_are_deterministic_about_ten_images_each():
    a, b = digits_corpus()["rows"], digits_corpus()["rows"]
    assert [r["subject_id"] for r in a] == [r["subject_id"] for r in b]
    from collections import Counter
    sizes = Counter(r["subject_id"] for r in a)
    assert len(sizes) == 180 and max(sizes.values()) == 10 and min(sizes.values()) == 7
    assert all(r["split"] == "holdout" for r in a if int(r["subject_id"].rsplit("-", 1)[1]) % 5 == 4)


@pytest.mark.parametrize("method", ["retrain", "ft", "ga", "rl", "l1_sparse", "laf", "laf_r"])
def test_every_method_runs_on_a_tiny_classifier(tmp_path, method):
    g = torch.Generator().manual_seed(0)
    rows = [LabeledExample(tuple(torch.rand(16, generator=g).tolist()), i % 3, f"r{i}", f"s{i // 4}")
            for i in range(48)]
    save_classifier(build_classifier(TINY, 0), tmp_path / "base")
    save_classifier(build_classifier(TINY, 1), tmp_path / "orig")
    hp = {"epochs": 2} if method not in ("laf", "laf_r") else {"epochs": 1, "vae_epochs": 1}
    res = run_unlearning(UnlearningRequest(method=method, family="image_classifier", model_dir=str(tmp_path / "orig"),
                                           base_dir=str(tmp_path / "base"), output_dir=str(tmp_path / method),
                                           forget=rows[:4], retain=rows[4:], hyperparameters=hp))
    assert res.changes_weights and res.steps > 0 and load_classifier(tmp_path / method) is not None
    if method == "l1_sparse":
        assert res.details["pruned_fraction"] >= 0.5


def test_overlapping_forget_and_retain_refused_before_training(tmp_path):
    save_classifier(build_classifier(TINY, 0), tmp_path / "orig")
    ex = LabeledExample(tuple([0.0] * 16), 1, "a", None)
    with pytest.raises(UnlearningInputError, match="overlap"):
        run_unlearning(UnlearningRequest(method="ft", family="image_classifier", model_dir=str(tmp_path / "orig"),
                                         output_dir=str(tmp_path / "o"), forget=[ex],
                                         retain=[LabeledExample(ex.features, 1, "b", None)]))


def test_examples_of_rows_use_content_digest_as_record_id():
    rows = digits_corpus()["rows"][:3]
    exs = examples_of_rows(rows) + examples_of_rows(rows, "holdout")
    assert all(e.record_id == e.content_digest() for e in exs)
