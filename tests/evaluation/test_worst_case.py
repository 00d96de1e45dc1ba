"""Worst-case forget sets (issue 19; Fan et al., ECCV 2024): the capped-simplex projection on fixed
inputs, top-m binarisation, and the selection preferring examples that stay easy after unlearning."""
import numpy as np
import pytest
import torch

from evaluation.worst_case import (
    WorstCaseConfig,
    classifier_lower_objective,
    classifier_worst_case,
    project_capped_simplex,
    select_worst_case,
    top_m,
)


@pytest.mark.parametrize("v, m, expect", [
    ([0.5, 0.5, 0.5, 0.5], 2, [0.5, 0.5, 0.5, 0.5]),       # already feasible
    ([2.0, 0.0, 0.0], 1, [1.0, 0.0, 0.0]),                   # μ = 1 caps the first at 1
    ([0.9, 0.8, 0.1], 1, [0.55, 0.45, 0.0]),                 # μ = 0.35
    ([3.0, 3.0, -1.0, 0.2], 2, [1.0, 1.0, 0.0, 0.0]),
    ([0.0, 0.0, 0.0], 3, [1.0, 1.0, 1.0]),
])
def test_projection_on_fixed_inputs(v, m, expect):
    w = project_capped_simplex(v, m)
    assert w.sum() == pytest.approx(m, abs=1e-8) and (w >= 0).all() and (w <= 1).all()
    assert w == pytest.approx(expect, abs=1e-7)


def test_projection_random_inputs_satisfy_constraints_and_is_closest():
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.normal(0, 3, 50)
        w = project_capped_simplex(v, 7)
        assert w.sum() == pytest.approx(7, abs=1e-8) and w.min() >= 0 and w.max() <= 1
        other = project_capped_simplex(rng.normal(0, 3, 50), 7)  # another feasible point is never closer
        assert np.linalg.norm(v - w) <= np.linalg.norm(v - other) + 1e-9


def test_projection_rejects_bad_m():
    with pytest.raises(ValueError, match="must lie in"):
        project_capped_simplex([0.1, 0.2], 3)


def test_top_m_breaks_ties_by_index():
    assert top_m([0.2, 0.9, 0.9, 0.1], 2).tolist() == [1, 2]


def test_selection_picks_the_examples_with_lowest_loss_when_lower_level_is_a_no_op():
    model = torch.nn.Linear(1, 1)
    losses = torch.tensor([3.0, 0.1, 2.0, 0.2, 5.0])
    out = select_worst_case(model, 2, per_example_loss=lambda _m: losses,
                            lower_objective=lambda mdl, w: 0.0 * mdl.weight.sum(),
                            config=WorstCaseConfig(upper_steps=10, upper_lr=0.5))
    assert out["indices"] == [1, 3] and sum(out["weights"]) == pytest.approx(2.0)
    assert out["history"][-1] < out["history"][0]


def test_lower_objectives_by_hand():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.zeros(2))

        def forward(self, x):
            return self.b.expand(len(x), 2), x

    x, y = torch.zeros(2, 1), torch.tensor([0, 1])
    w = torch.tensor([1.0, 0.0])
    ln2 = float(np.log(2.0))
    assert classifier_lower_objective("ga", x, y, 2)(Fixed(), w).item() == pytest.approx(-ln2)
    assert classifier_lower_objective("ft", x, y, 2)(Fixed(), w).item() == pytest.approx(ln2)
    assert classifier_lower_objective("rl", x, y, 2)(Fixed(), w).item() == pytest.approx(ln2)
    assert classifier_lower_objective("l1_sparse", x, y, 2, l1_gamma=1.0)(Fixed(), w).item() == pytest.approx(ln2)


def test_classifier_worst_case_returns_record_ids():
    from unlearning_engine.families.classifier.data import LabeledExample
    from unlearning_engine.families.classifier.model import ClassifierConfig, build_classifier

    cfg = ClassifierConfig(family="tabular_classifier", arch="mlp", input_shape=[3], n_classes=2, embed_dim=4,
                           hidden=4, input_transform="log1p")
    pool = [LabeledExample((float(i), 1.0, 2.0), i % 2, f"r{i}") for i in range(12)]
    out = classifier_worst_case(build_classifier(cfg, 0), pool, 3, "ft", WorstCaseConfig(upper_steps=3, lower_steps=2))
    assert len(out["record_ids"]) == 3 and all(r.startswith("r") for r in out["record_ids"])
    assert sum(out["weights"]) == pytest.approx(3.0)
