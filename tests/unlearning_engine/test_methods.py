import math

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
from unlearning_engine.training import collate, encode_examples, sequence_log_likelihood

FAST = {"retrain": {"epochs": 1, "batch_size": 8}, "dp2": {"epochs": 1, "batch_size": 8},
        "npo_gd": {"epochs": 1, "batch_size": 2}}


def _req(method_name, tmp_path, examples, served, base, **kw):
    args = dict(method=method_name, model_dir=str(served), output_dir=str(tmp_path / method_name),
                forget=examples[:4], retain=examples[4:20], base_dir=str(base),
                dp_base_dir=str(base), hyperparameters=dict(FAST[method_name]))
    args.update(kw)
    return UnlearningRequest(**args)


def test_registry():
    assert {"retrain", "dp2", "npo_gd"} <= set(available_methods())
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


@pytest.mark.parametrize("method", ["retrain", "dp2", "npo_gd"])
def test_method_runs_and_artifact_loads(method, tmp_path, examples, served_dir, base_dir):
    seen = []
    res = run_unlearning(_req(method, tmp_path, examples, served_dir, base_dir, progress=seen.append))
    assert res.method == method and res.changes_weights
    assert res.steps > 0 and res.tokens > 0 and res.wall_seconds > 0
    assert res.weights_sha256 == weights_sha256(res.output_dir)
    assert set(res.hyperparameters) == set(get_method(method).defaults)
    assert res.hyperparameters["epochs"] == 1
    assert len(seen) == res.steps
    model, tok = load_artifact(res.output_dir)
    assert res.weights_sha256 != weights_sha256(served_dir)
    if method == "npo_gd":
        assert res.details["initial_npo_loss"] == pytest.approx(2 / 0.1 * math.log(2), abs=1e-4)


def _boom(*a, **k):
    raise AssertionError("training must not start")


@pytest.mark.parametrize("method", ["retrain", "dp2", "npo_gd"])
def test_bad_input_raises_before_training(method, tmp_path, examples, served_dir, base_dir,
                                          monkeypatch):
    import unlearning_engine.methods.dp2 as m_dp2
    import unlearning_engine.methods.npo_gd as m_npo
    import unlearning_engine.methods.retrain as m_re
    for mod in (m_dp2, m_npo, m_re):
        monkeypatch.setattr(mod, "load_artifact", _boom)
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
    with pytest.raises(UnlearningInputError, match="epochs"):
        run_unlearning(mk(hyperparameters={"epochs": 0}))
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
