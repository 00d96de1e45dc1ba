"""Checkpoint/resume, early stop, collapse detection, LoRA adapters, ECO hooks."""
from pathlib import Path

import pytest
import torch

from unlearning_engine.collapse import CollapseConfig, collapse_reasons, snapshot
from unlearning_engine.data import format_prompt
from unlearning_engine.eco import load_eco_model
from unlearning_engine.errors import CollapseError, UnlearningError
from unlearning_engine.methods import UnlearningRequest, run_unlearning
from unlearning_engine.modeling import load_artifact, weights_sha256


def _req(method, out, examples, served, hp, **kw):
    return UnlearningRequest(method=method, model_dir=str(served), output_dir=str(out),
                             forget=examples[:4], retain=examples[4:20],
                             hyperparameters={"preset": "test", **hp}, **kw)


class _Crash(Exception):
    pass


def test_checkpoint_resume_gives_the_same_model(tmp_path, served_dir, examples):
    hp = {"epochs": 3, "batch_size": 2, "collapse_check": False}
    ref = run_unlearning(_req("gd", tmp_path / "a", examples, served_dir, hp))
    assert ref.details["resumed_from_epoch"] == {"gd": None}

    def crash_in_epoch_3(p):
        if p.step == 5:  # 2 steps per epoch: epoch 3 has begun, epoch-2 checkpoint exists
            raise _Crash

    with pytest.raises(_Crash):
        run_unlearning(_req("gd", tmp_path / "b", examples, served_dir, hp, progress=crash_in_epoch_3))
    ck = tmp_path / "b" / "checkpoints"
    assert [p.name for p in ck.iterdir() if p.name.startswith("epoch-")] == ["epoch-2"]
    res = run_unlearning(_req("gd", tmp_path / "b", examples, served_dir, hp, resume=True))
    assert res.details["resumed_from_epoch"] == {"gd": 2}
    assert res.steps == ref.steps == 6
    assert res.weights_sha256 == ref.weights_sha256
    assert not ck.exists()


def test_early_stop_on_forget_nll(tmp_path, served_dir, examples):
    from unlearning_engine.training import evaluate_nll
    model, tok = load_artifact(served_dir)
    f0 = evaluate_nll(model, tok, examples[:4])
    res = run_unlearning(_req("ga", tmp_path / "ga", examples, served_dir,
                              {"epochs": 6, "lr": 5e-3, "batch_size": 4, "collapse_check": False,
                               "stop_forget_nll": f0 + 0.05}))
    assert res.details["stopped_early"] is True
    assert res.details["epochs_run"] < 6 and res.steps == res.details["epochs_run"]
    assert res.details["forget_nll_history"][-1] >= f0 + 0.05


def test_collapse_detected_on_destroyed_model(served_dir, examples):
    model, tok = load_artifact(served_dir)
    cfg = CollapseConfig()
    before = snapshot(model, tok, examples[4:20], cfg)
    assert collapse_reasons(before, before, cfg) == []
    with torch.no_grad():
        model.model.norm.weight.zero_()  # every position predicts the uniform distribution
    after = snapshot(model, tok, examples[4:20], cfg)
    reasons = collapse_reasons(before, after, cfg)
    assert any(r.startswith("repetition") for r in reasons)
    # a blown-up retain NLL alone is enough
    fake = dict(before, retain_nll=before["retain_nll"] * 10 + 5)
    assert any("retain NLL" in r for r in collapse_reasons(before, fake, cfg))
    assert issubclass(CollapseError, UnlearningError)


def test_collapse_fails_the_run(tmp_path, served_dir, examples):
    with pytest.raises(CollapseError) as ei:
        run_unlearning(_req("ga", tmp_path / "boom", examples, served_dir,
                            {"epochs": 4, "lr": 0.3, "batch_size": 2}))
    assert ei.value.reason
    assert not (tmp_path / "boom" / "model.safetensors").exists()


def test_lora_adapter_saved_reloaded_changes_outputs(tmp_path, served_dir, examples):
    from unlearning_engine.lora import load_adapter

    res = run_unlearning(_req("npo_kl", tmp_path / "lora", examples, served_dir,
                              {"lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]},
                               "epochs": 2, "lr": 5e-3}))
    adapter = Path(res.details["adapter_dir"])
    assert (adapter / "adapter_config.json").is_file()
    # initial NPO loss with the adapter-disabled reference is exactly (2/β) ln 2
    assert res.details["initial_npo_loss"] == pytest.approx(20 * 0.6931471805599453, abs=1e-4)
    base, tok = load_artifact(served_dir)
    ids = tok(format_prompt(examples[0]), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base_logits = base(ids).logits
    reloaded = load_adapter(load_artifact(served_dir)[0], adapter)
    merged, _ = load_artifact(res.output_dir)
    with torch.no_grad():
        lora_logits = reloaded(ids).logits
        merged_logits = merged(ids).logits
    assert (lora_logits - base_logits).abs().max() > 1e-4
    torch.testing.assert_close(lora_logits, merged_logits, atol=1e-4, rtol=1e-4)
    # the merged artifact loads as a plain model (no peft wrapper, no lora weights)
    assert not any("lora" in k for k in merged.state_dict())


def test_eco_hook_changes_only_flagged_prompts(tmp_path, served_dir, examples):
    res = run_unlearning(_req("eco", tmp_path / "eco", examples, served_dir, {}))
    assert res.details["suppression_only"] is True and not res.changes_weights
    assert res.weights_sha256 == weights_sha256(served_dir)
    assert (tmp_path / "eco" / "eco.json").is_file()
    model, tok, guard = load_eco_model(res.output_dir)
    auto, _ = load_artifact(res.output_dir)  # load_artifact re-attaches the hook too
    assert hasattr(auto, "eco_guard")
    plain, _ = load_artifact(res.output_dir, with_eco=False)
    f_prompt, r_prompt = format_prompt(examples[0]), format_prompt(examples[10])
    assert guard.classify([f_prompt, r_prompt]) == [True, False]
    for prompt, flagged in ((f_prompt, True), (r_prompt, False)):
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hooked = model(ids).logits
            clean = plain(ids).logits
        assert guard.last_flags == [flagged]
        assert torch.equal(hooked, clean) != flagged
    # generation works with the hook (cache steps are not re-classified)
    ids = tok(f_prompt, return_tensors="pt")["input_ids"]
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                         do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > ids.shape[1]
    guard.detach()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, plain(ids).logits)


@pytest.mark.parametrize("method", ["retrain", "kl", "task_vector", "whp", "l1_sparse"])
def test_lora_for_other_methods(method, tmp_path, served_dir, base_dir, examples):
    res = run_unlearning(_req(method, tmp_path / method, examples, served_dir,
                              {"lora": {"r": 2, "target_modules": ["q_proj", "v_proj"]},
                               "collapse_check": False}, base_dir=str(base_dir)))
    assert res.details["lora"] is True
    assert (Path(res.details["adapter_dir"]) / "adapter_config.json").is_file()
    model, _ = load_artifact(res.output_dir)
    assert not any("lora" in k for k in model.state_dict())
    assert res.weights_sha256 != weights_sha256(served_dir)
