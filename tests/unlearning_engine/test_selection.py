import pytest
import torch

from unlearning_engine.modeling import load_artifact
from unlearning_engine.selection import project_capped_simplex, select_worst_case


@pytest.mark.parametrize("v,m,expected", [
    ([0.5, 0.5, 0.5], 1, [1 / 3, 1 / 3, 1 / 3]),
    ([2.0, 0.0, 0.0], 1, [1.0, 0.0, 0.0]),
    ([0.9, 0.8, 0.1, 0.0], 2, [0.95, 0.85, 0.15, 0.05]),
    ([3.0, 3.0, -1.0, 0.2], 2, [1.0, 1.0, 0.0, 0.0]),
    ([0.2, 0.4, 0.6], 3, [1.0, 1.0, 1.0]),
    ([0.2, 0.4, 0.6], 0, [0.0, 0.0, 0.0]),
])
def test_projection_by_bisection(v, m, expected):
    w = project_capped_simplex(torch.tensor(v, dtype=torch.float64), m)
    assert w.tolist() == pytest.approx(expected, abs=1e-9)
    assert float(w.sum()) == pytest.approx(m, abs=1e-9)


def test_projection_rejects_bad_m():
    with pytest.raises(ValueError):
        project_capped_simplex(torch.zeros(3), 4)


def test_select_worst_case_per_record_and_group(served_dir, examples):
    model, tok = load_artifact(served_dir)
    cands = examples[:8]
    before = [p.detach().clone() for p in model.parameters()]
    r = select_worst_case(model, tok, cands, 3, steps=2, inner_steps=1, inner_lr=1e-3)
    assert len(r.selected) == 3 and len(set(r.selected)) == 3
    assert sum(r.weights) == pytest.approx(3, abs=1e-6)
    assert all(0 <= w <= 1 for w in r.weights) and len(r.history) == 2
    # the chosen records are those with the lowest post-unlearning loss (hardest to forget)
    worst = sorted(range(8), key=lambda i: r.losses[i])[:3]
    assert sorted(worst) == r.selected
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # θ_o untouched
    groups = [f"g{i % 4}" for i in range(8)]
    g = select_worst_case(model, tok, cands, 2, steps=1, inner_steps=1, groups=groups, method="npo")
    assert len(g.units) == 2 and len(g.selected) == 4
    assert all(groups[i] in g.units for i in g.selected)
