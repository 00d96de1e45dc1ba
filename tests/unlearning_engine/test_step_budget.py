"""dp2's budget in optimizer steps (issue 15 item 3): a fixed number of steps whatever |D_r|."""
import math

import pytest

from unlearning_engine import UnlearningRequest, run_unlearning
from unlearning_engine.errors import UnlearningInputError
from unlearning_engine.methods.dp2 import DP2


def test_budget_is_epochs_without_steps_and_exact_steps_with_them():
    m = DP2()
    assert m.budget({"epochs": 3, "batch_size": 4, "steps": None}, 10) == (3, None)
    # 10 records at batch 4 = 3 steps per epoch; 7 steps = 3 epochs, the last one partial
    assert m.budget({"epochs": 3, "batch_size": 4, "steps": 7}, 10) == (math.ceil(7 / 3), 7)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", True])
def test_steps_must_be_a_whole_positive_number(bad):
    with pytest.raises(UnlearningInputError):
        DP2().resolve_hyperparameters({"steps": bad, "preset": "test"})


def test_dp2_runs_exactly_the_step_budget_on_retain_sets_of_any_size(served_dir, examples, tmp_path):
    forget, retain = examples[:4], examples[4:]
    steps = []
    for n in (len(retain), len(retain) // 2):
        res = run_unlearning(UnlearningRequest(
            method="dp2", model_dir=str(served_dir), output_dir=str(tmp_path / f"o{n}"), forget=forget,
            retain=retain[:n], dp_base_dir=str(served_dir),
            hyperparameters={"preset": "test", "steps": 5, "batch_size": 2, "collapse_check": False},
            device="cpu"))
        steps.append(res.steps)
    assert steps == [5, 5]  # 44 and 22 retain records at batch 2: 22 and 11 steps per epoch
