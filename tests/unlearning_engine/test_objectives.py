"""Values of the objectives: KL at step 0, GA direction, task-vector arithmetic, WHP formula,
ℓ1 schedule and pruning."""
import pytest
import torch

from unlearning_engine.lora import wrap_lora
from unlearning_engine.methods import UnlearningRequest, run_unlearning
from unlearning_engine.methods.common import kl_retain_term
from unlearning_engine.methods.l1_sparse import gamma_schedule, magnitude_masks
from unlearning_engine.methods.task_vector import negate_task_vector
from unlearning_engine.methods.whp import (
    align_positions,
    generic_logits,
    substitute_anchors,
)
from unlearning_engine.modeling import load_artifact
from unlearning_engine.training import collate, encode_examples, evaluate_nll


def _req(method, tmp_path, examples, served, hp, **kw):
    return UnlearningRequest(method=method, model_dir=str(served), output_dir=str(tmp_path / method),
                             forget=examples[:4], retain=examples[4:20],
                             hyperparameters={"preset": "test", **hp}, **kw)


def test_kl_term_is_zero_at_step0(served_dir, examples):
    model, tok = load_artifact(served_dir)
    ref, _ = load_artifact(served_dir)
    b = collate(encode_examples(tok, examples[4:8]), tok.pad_token_id)
    model.train()  # same as in the loop
    assert abs(kl_retain_term(model, b, ref).item()) < 1e-6
    peft_model = wrap_lora(model, {"r": 4, "alpha": 8, "dropout": 0.0,
                                   "target_modules": ["q_proj", "v_proj"]})
    kl = kl_retain_term(peft_model, b, None)  # ref = the base with adapters disabled
    assert abs(kl.item()) < 1e-6
    kl.backward()  # differentiable w.r.t. the adapter


def test_ga_step_lowers_forget_loglik(tmp_path, served_dir, examples):
    model, tok = load_artifact(served_dir)
    before = evaluate_nll(model, tok, examples[:4])
    res = run_unlearning(_req("ga", tmp_path, examples, served_dir,
                              {"epochs": 1, "batch_size": 4, "lr": 1e-3, "collapse_check": False}))
    assert res.steps == 1
    after_model, _ = load_artifact(res.output_dir)
    after = evaluate_nll(after_model, tok, examples[:4])
    assert after > before  # log-likelihood of D_f went down
    assert res.details["final_forget_nll"] == pytest.approx(before, rel=1e-4)


def test_negate_task_vector_on_fixed_tensors():
    o = {"w": torch.tensor([1.0, 2.0, -1.0]), "step": torch.tensor([3])}
    ft = {"w": torch.tensor([1.5, 1.0, -1.0]), "step": torch.tensor([9])}
    out = negate_task_vector(o, ft, 2.0)
    assert torch.equal(out["w"], torch.tensor([0.0, 4.0, -1.0]))
    assert torch.equal(out["step"], o["step"])


def test_task_vector_result_is_exact(tmp_path, served_dir, examples):
    alpha = 0.7
    res = run_unlearning(_req("task_vector", tmp_path, examples, served_dir,
                              {"alpha": alpha, "save_finetuned": True, "collapse_check": False}))
    o = load_artifact(served_dir)[0].state_dict()
    ft = load_artifact(tmp_path / "task_vector" / "finetuned")[0].state_dict()
    u = load_artifact(res.output_dir)[0].state_dict()
    assert set(u) == set(o)
    changed = 0
    for k in o:
        expect = o[k] - alpha * (ft[k] - o[k])
        assert torch.equal(u[k], expect), k
        changed += not torch.equal(u[k], o[k])
    assert changed > 0


def test_whp_generic_logits_formula():
    v_o = torch.tensor([1.0, 2.0, 3.0, 0.0])
    v_r = torch.tensor([2.0, 1.0, 5.0, 0.0])
    assert torch.equal(generic_logits(v_o, v_r, 2.0), torch.tensor([-1.0, 2.0, -1.0, 0.0]))
    assert torch.equal(generic_logits(v_o, v_r, 0.0), v_o)


def test_whp_anchor_substitution_and_alignment():
    anchors = {"Harry Potter": "Jon Smith", "Harry": "Jon", "Hogwarts": "the academy"}
    assert substitute_anchors("Harry Potter went to Hogwarts with Harry.", anchors) == \
        "Jon Smith went to the academy with Jon."
    # equal blocks map 1:1, the substituted span is left out
    assert align_positions([1, 2, 3, 4, 5], [1, 2, 9, 9, 4, 5]) == {0: 0, 1: 1, 3: 4, 4: 5}


def test_whp_with_anchors_runs(tmp_path, served_dir, examples):
    res = run_unlearning(_req("whp", tmp_path, examples, served_dir,
                              {"anchors": {"Ada Brook": "a writer"}, "alpha": 5.0,
                               "collapse_check": False}))
    assert res.details["anchors"] == 1
    assert 0 <= res.details["generic_labels_changed"] <= res.details["generic_labels_total"]
    assert res.details["generic_labels_total"] > 0


def test_l1_schedule_values():
    assert gamma_schedule(1.0, 5, 1) == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert gamma_schedule(2.0, 4, 2) == [2.0, 1.0, 0.0, 0.0]
    assert gamma_schedule(0.3, 3, 0) == pytest.approx([0.3, 0.2, 0.1])


def test_l1_sparse_with_pruning(tmp_path, served_dir, examples):
    res = run_unlearning(_req("l1_sparse", tmp_path, examples, served_dir,
                              {"epochs": 3, "zero_tail_epochs": 1, "gamma": 2.0,
                               "prune_ratio": 0.5, "collapse_check": False}))
    assert res.details["gamma_schedule"] == [2.0, 1.0, 0.0]
    assert res.details["pruned_fraction"] >= 0.5
    model, _ = load_artifact(res.output_dir)
    masks = magnitude_masks(model, 0.0)  # just the list of prunable weights
    named = dict(model.named_parameters())
    zeros = sum(int((named[n] == 0).sum()) for n in masks)
    total = sum(named[n].numel() for n in masks)
    assert zeros / total >= 0.5
