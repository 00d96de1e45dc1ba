"""U-LiRA (issue 19; Hayes et al. 2024): statistic, inclusion design, Gaussian fit, decisions, the
verdict check and one small end-to-end run with real shadow models."""
import math

import numpy as np
import pytest
import torch

from evaluation.profiles.classifier_ulira import (
    fit_shadow_gaussians,
    inclusion_matrix,
    log_likelihood_ratio,
    logit_confidence,
    ulira_accuracy,
    ulira_metric,
    ulira_targets,
)
from evaluation.profiles.classifier_verdicts import compute_classifier_verdicts
from unlearning_engine.families.classifier.data import LabeledExample


class _Fixed(torch.nn.Module):
    """Returns fixed logits per row (row = its first feature as an index)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits))

    def forward(self, x):
        return self.logits[x[:, 0].long()], x


def test_logit_confidence_by_hand():
    model = _Fixed([[math.log(3.0), 0.0, 0.0]])
    phi = logit_confidence(model, [LabeledExample((0.0,), 0), LabeledExample((0.0,), 1)])
    # p = (3/5, 1/5, 1/5): φ_0 = log(0.6/0.4) = log 1.5; φ_1 = log(0.2/0.8) = -log 4
    assert phi == pytest.approx([math.log(1.5), -math.log(4.0)])


def test_inclusion_matrix_is_balanced_and_needs_even_k():
    inc = inclusion_matrix(7, 4, seed=3)
    assert inc.shape == (4, 7) and (inc.sum(0) == 2).all() and (inc[0] == ~inc[1]).all()
    assert sorted(inc.sum(1).tolist()) == [3, 3, 4, 4]
    assert inclusion_matrix(2, 2, seed=0).sum(1).tolist() == [1, 1]  # no shadow forgets nothing
    with pytest.raises(ValueError, match="even"):
        inclusion_matrix(3, 3)


def test_gaussian_fit_and_llr_by_hand():
    phi = np.array([[1.0, 4.0], [3.0, 0.0], [2.0, 6.0], [5.0, 2.0]])
    inc = np.array([[1, 1], [0, 0], [1, 1], [0, 0]], dtype=bool)
    g = fit_shadow_gaussians(phi, inc)
    assert g.mu_in.tolist() == [1.5, 5.0] and g.mu_out.tolist() == [4.0, 1.0]
    # in deviations: ±0.5, ±1 → Σ = 2.5 over 4 − 2 dof; out: ±1, ±1 → 4 / 2
    assert g.sd_in == pytest.approx(math.sqrt(1.25)) and g.sd_out == pytest.approx(math.sqrt(2.0))
    llr = log_likelihood_ratio(np.array([1.5, 1.0]), g)
    expect0 = -math.log(g.sd_in) - (-0.5 * (2.5 / g.sd_out) ** 2 - math.log(g.sd_out))
    assert llr[0] == pytest.approx(expect0) and llr[0] > 0 and llr[1] < 0


def test_accuracy_separated_is_100_and_identical_is_chance():
    rng = np.random.default_rng(0)
    inc = inclusion_matrix(40, 8, seed=0)
    truth = np.array([1] * 20 + [0] * 20)
    phi = np.where(inc, 5.0, -5.0) + rng.normal(0, 0.1, inc.shape)
    target = np.where(truth == 1, 5.0, -5.0)
    m = ulira_accuracy(phi, inc, target, truth)
    assert m["value"] == 100.0 and m["n"] == 40 and m["details"]["n_shadows"] == 8
    same = ulira_accuracy(rng.normal(0, 1, inc.shape), inc, rng.normal(0, 1, 40), truth)
    assert 20.0 <= same["value"] <= 80.0 and same["ci95"][0] < 50.0 < same["ci95"][1]


def test_targets_balanced_and_skip_test_twins_of_training_records():
    forget = [LabeledExample((float(i),), 0) for i in range(3)]
    retain = [LabeledExample((9.0,), 1)]
    test = [LabeledExample((9.0,), 1), LabeledExample((7.0,), 1), LabeledExample((8.0,), 0)]
    targets, truth = ulira_targets(forget, test, 0, retain)
    assert truth.tolist() == [1, 1, 0, 0] and LabeledExample((9.0,), 1) not in targets


def _rep(ulira):
    m = {"value": 0.0, "ci95": [0.0, 30.0], "n": 10, "status": "ok"}
    return {"metrics": {"ua": m, "ra": {**m, "value": 100.0, "ci95": [99, 100]},
                        "ta": {**m, "value": 98.0, "ci95": [97, 99]}, "mia_efficacy": m, "mia_test_nonmember": m,
                        **({"ulira_accuracy": ulira} if ulira else {})}, "n": {"forget": 10}}


@pytest.mark.parametrize("value, ci, status", [(55.0, [32.0, 77.0], "pass"), (75.0, [51.0, 91.0], "inconclusive"),
                                               (95.0, [75.0, 99.9], "fail")])
def test_ulira_check_three_valued(value, ci, status):
    u = {"value": value, "ci95": ci, "n": 20, "status": "ok", "details": {"n_shadows": 4}}
    v = compute_classifier_verdicts(_rep(u), _rep(None), _rep(None))
    c = next(c for c in v["checks"] if c["name"] == "ulira")
    assert c["status"] == status and c["threshold"] == 60.0 and c["passed"] == (status != "fail")
    assert "U-LiRA (4 shadow models" in v["not_verified"][0]
    if status == "inconclusive":
        assert any("'ulira' is inconclusive" in s for s in v["not_verified"])


def test_without_ulira_the_certificate_says_it_was_not_run():
    v = compute_classifier_verdicts(_rep(None), _rep(None), _rep(None))
    assert "ulira" not in {c["name"] for c in v["checks"]} and "were not run" in v["not_verified"][0]


def test_ulira_end_to_end_with_real_shadows_gives_a_bounded_accuracy(tmp_path):
    from unlearning_engine.families.classifier.data import breast_cancer_corpus, examples_of_rows
    from unlearning_engine.families.classifier.model import ClassifierConfig, build_classifier
    from unlearning_engine.families.classifier.shadows import ShadowPipeline
    from unlearning_engine.families.classifier.train import train_classifier

    c = breast_cancer_corpus()
    train, test = examples_of_rows(c["rows"])[:120], examples_of_rows(c["rows"], "holdout")[:40]
    cfg = ClassifierConfig(**c["config"])
    forget, retain = train[:6], train[6:]
    model = build_classifier(cfg, 0)
    train_classifier(model, retain, epochs=3, lr=3e-3, batch_size=32)
    pipe = ShadowPipeline(cfg, tmp_path, "ft", {"epochs": 1}, recipe={"epochs": 3, "lr": 3e-3, "batch_size": 32})
    m = ulira_metric(model, forget=forget, retain=retain, test=test, n_shadows=2, train=pipe.train,
                     unlearn=pipe.unlearn)
    assert m["status"] == "ok" and m["n"] == 12 and 0.0 <= m["value"] <= 100.0
    assert (tmp_path / "shadow-1" / "unlearned-ft" / "model.safetensors").is_file()
    assert ulira_metric(model, forget=forget, retain=retain, test=[], n_shadows=2, train=pipe.train,
                        unlearn=pipe.unlearn)["status"] == "undefined"


def test_shadow_dp_kwargs_follow_the_one_batch_rule():
    from unlearning_engine.families.classifier.shadows import dp_kwargs

    kw = dp_kwargs({"batch_size": 16, "seed": 3, "epochs": 2})
    assert kw["batch_size"] == 16 and "sample_rate" not in kw and "seed" not in kw and kw["epochs"] == 2
    assert dp_kwargs(None)["sample_rate"] == 0.1
