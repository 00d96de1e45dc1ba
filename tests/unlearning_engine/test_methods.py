import json
import math
from pathlib import Path

import pytest
import torch

from unlearning_engine.data import Example
from unlearning_engine.errors import UnknownMethodError, UnlearningInputError
from unlearning_engine.methods import (
    UnlearningRequest,
    available_methods,
    get_method,
    npo_loss,
    run_unlearning,
)
from unlearning_engine.modeling import load_artifact, weights_sha256
from unlearning_engine.presets import PRESET_HP
from unlearning_engine.training import collate, encode_examples, sequence_log_likelihood

ALL = ["retrain", "dp2", "ga", "gd", "kl", "npo", "npo_gd", "npo_kl", "task_vector", "whp",
       "l1_sparse", "eco"]


def _req(method_name, tmp_path, examples, served, base, **kw):
    args = dict(method=method_name, model_dir=str(served), output_dir=str(tmp_path / method_name),
                forget=examples[:4], retain=examples[4:20], base_dir=str(base),
                dp_base_dir=str(base), hyperparameters={"preset": "test"})
    args.update(kw)
    return UnlearningRequest(**args)


def test_registry():
    assert set(ALL) <= set(available_methods())
    with pytest.raises(UnknownMethodError):
        get_method("nope")
    assert issubclass(UnknownMethodError, UnlearningInputError)
    assert issubclass(UnlearningInputError, ValueError)


def test_npo_loss_at_step0_is_2_over_beta_ln2(served_dir, examples):
    model, tok = load_artifact(served_dir)
    ref, _ = load_artifact(served_dir)
    b = collate(encode_examples(tok, examples[:4]), tok.pad_token_id)
    with torch.no_grad():
        pol, _ = sequence_log_likelihood(model, b)
        refl, _ = sequence_log_likelihood(ref, b)
    for beta in (0.1, 0.5):
        assert npo_loss(pol, refl, beta).item() == pytest.approx(2 / beta * math.log(2), abs=1e-5)


@pytest.mark.parametrize("method", available_methods())
def test_method_runs_and_artifact_loads(method, tmp_path, examples, served_dir, base_dir):
    seen = []
    res = run_unlearning(_req(method, tmp_path, examples, served_dir, base_dir, progress=seen.append))
    assert res.method == method
    assert res.weights_sha256 == weights_sha256(res.output_dir)
    assert set(res.hyperparameters) == set(get_method(method).defaults)
    assert res.hyperparameters["preset"] == "test"
    assert res.wall_seconds > 0
    model, tok = load_artifact(res.output_dir)
    assert len(seen) == res.steps
    json.dumps(res.to_dict())  # the Django side stores it as JSON
    if method == "eco":
        assert not res.changes_weights and res.details["suppression_only"] is True
        assert res.weights_sha256 == weights_sha256(served_dir)
        assert res.steps == 0
        return
    assert res.changes_weights and res.steps > 0 and res.tokens > 0
    assert res.weights_sha256 != weights_sha256(served_dir)
    assert not (Path(res.output_dir) / "checkpoints").exists()
    assert "collapse_check" in res.details
    if method in ("npo", "npo_gd", "npo_kl"):
        assert res.details["initial_npo_loss"] == pytest.approx(2 / 0.1 * math.log(2), abs=1e-4)


def test_presets_use_known_keys():
    for size, table in PRESET_HP.items():
        for method, values in table.items():
            m = get_method(method)
            assert set(values) <= set(m.defaults), (size, method)
            hp = m.resolve_hyperparameters({"preset": size})
            assert all(hp[k] == v for k, v in values.items())
    # explicit values win over the preset
    hp = get_method("ga").resolve_hyperparameters({"preset": "test", "lr": 0.5})
    assert hp["lr"] == 0.5 and hp["epochs"] == PRESET_HP["test"]["ga"]["epochs"]


def _boom(*a, **k):
    raise AssertionError("training must not start")


@pytest.mark.parametrize("method", ALL)
def test_bad_input_raises_before_training(method, tmp_path, examples, served_dir, base_dir,
                                          monkeypatch):
    import unlearning_engine.methods.common as m_common
    import unlearning_engine.methods.eco as m_eco
    monkeypatch.setattr(m_common, "load_artifact", _boom)
    monkeypatch.setattr(m_eco, "fit_classifier", _boom)
    mk = lambda **kw: _req(method, tmp_path, examples, served_dir, base_dir, **kw)  # noqa: E731
    with pytest.raises(UnlearningInputError, match="empty"):
        run_unlearning(mk(forget=[]))
    with pytest.raises(UnlearningInputError, match="record_id"):
        run_unlearning(mk(retain=examples[4:10] + [examples[0]]))
    dup = Example(question=examples[1].question, answer=examples[1].answer, record_id="other")
    with pytest.raises(UnlearningInputError, match="same text"):
        run_unlearning(mk(retain=examples[4:10] + [dup]))
    with pytest.raises(UnlearningInputError, match="unknown hyper-parameter"):
        run_unlearning(mk(hyperparameters={"epochz": 3}))
    first_int = "top_k" if method == "eco" else "epochs"
    with pytest.raises(UnlearningInputError, match=first_int):
        run_unlearning(mk(hyperparameters={first_int: 0}))
    with pytest.raises(UnlearningInputError, match="preset"):
        run_unlearning(mk(hyperparameters={"preset": "huge"}))
    if method != "eco":
        with pytest.raises(UnlearningInputError, match="lora"):
            run_unlearning(mk(hyperparameters={"lora": {"rank": 4}}))
        with pytest.raises(UnlearningInputError, match="lora"):
            run_unlearning(mk(hyperparameters={"lora": {"r": 0}}))
        with pytest.raises(UnlearningInputError, match="on_long_text"):
            run_unlearning(mk(hyperparameters={"on_long_text": "ignore"}))
        with pytest.raises(UnlearningInputError, match="collapse_check"):
            run_unlearning(mk(hyperparameters={"collapse_check": "yes"}))
    if method == "whp":
        with pytest.raises(UnlearningInputError, match="anchors"):
            run_unlearning(mk(hyperparameters={"anchors": ["Harry"]}))
    if method == "l1_sparse":
        with pytest.raises(UnlearningInputError, match="prune_ratio"):
            run_unlearning(mk(hyperparameters={"prune_ratio": 1.0}))
        with pytest.raises(UnlearningInputError, match="lora"):
            run_unlearning(mk(hyperparameters={"prune_ratio": 0.5, "lora": {"r": 2}}))
    with pytest.raises(UnknownMethodError):
        req = mk()
        req.method = "magic"
        run_unlearning(req)
    assert not (tmp_path / method).exists()


def test_missing_dirs_rejected(tmp_path, examples, served_dir, base_dir):
    with pytest.raises(UnlearningInputError, match="base_dir"):
        run_unlearning(_req("retrain", tmp_path, examples, served_dir, base_dir, base_dir=None))
    with pytest.raises(UnlearningInputError, match="dp_base_dir"):
        run_unlearning(_req("dp2", tmp_path, examples, served_dir, base_dir, dp_base_dir=None))
    with pytest.raises(UnlearningInputError, match="dp_base_dir"):
        run_unlearning(_req("dp2", tmp_path, examples, served_dir, base_dir,
                            dp_base_dir=str(tmp_path / "nothing")))


def test_long_text_truncated_or_rejected(tmp_path, examples, served_dir, base_dir, monkeypatch):
    long = Example(question="Tell me everything?", answer=" ".join(["word"] * 400), record_id="L")
    res = run_unlearning(_req("gd", tmp_path, examples, served_dir, base_dir,
                              retain=examples[4:12] + [long],
                              hyperparameters={"preset": "test", "collapse_check": False}))
    assert res.details["truncated"] == {"forget": 0, "retain": 1}
    assert res.details["context_length"] == 256

    import unlearning_engine.methods.common as m_common
    monkeypatch.setattr(m_common, "run_loop", _boom)
    with pytest.raises(UnlearningInputError, match="context"):
        run_unlearning(_req("gd", tmp_path, examples, served_dir, base_dir,
                            output_dir=str(tmp_path / "rej"), retain=examples[4:12] + [long],
                            hyperparameters={"preset": "test", "on_long_text": "reject"}))
