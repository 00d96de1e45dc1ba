"""Subject-level DP-SGD (issue 12): unit grouping, per-unit clipping values, ledger an auditor can
recompute, bad input before training, noise nobody can replay."""
import math
import warnings

import pytest
import torch

from unlearning_engine.data import Example
from unlearning_engine.dp import train_dp_base
from unlearning_engine.dp_accounting import RDP_ALPHAS, account, calibrate, rdp_epsilon
from unlearning_engine.dp_user import clipped_unit_sum, group_units, sample_step
from unlearning_engine.errors import PrivacyBudgetError, UnlearningInputError
from unlearning_engine.modeling import load_artifact, weights_sha256
from unlearning_engine.training import collate, encode_examples, per_example_nll

from .conftest import make_examples


def with_subjects(examples, per_subject: int):
    return [Example(question=e.question, answer=e.answer, record_id=e.record_id,
                    subject=f"s{i // per_subject}") for i, e in enumerate(examples)]


@pytest.fixture(scope="module")
def subject_examples(examples):
    return with_subjects(examples, 2)  # 48 records, 24 subjects × 2


def test_group_units_subject_and_record():
    ex = [Example(text="a", subject="x"), Example(text="b"), Example(text="c", subject="x"),
          Example(text="d", subject="y"), Example(text="e")]
    assert group_units(ex, "subject") == [[0, 2], [1], [3], [4]]
    assert group_units(ex, "record") == [[0], [1], [2], [3], [4]]
    with pytest.raises(UnlearningInputError, match="privacy_unit"):
        group_units(ex, "household")
    d = ex[0].to_dict()
    assert d["subject"] == "x" and Example.from_dict(d) == ex[0]


def test_sample_step_bounds_records_per_unit():
    g = torch.Generator().manual_seed(0)
    units = [list(range(10)), [10], [11, 12]]
    for _ in range(20):
        for recs in sample_step(units, 1.0, 3, g):
            assert 1 <= len(recs) <= 3 and len(set(recs)) == len(recs)
    assert sample_step(units, 0.0, 3, g) == []  # empty Poisson sample


def test_clipped_unit_sum_matches_naive_per_unit_mean_and_clip(base_dir):
    """GradSampleModule + index_add = Σ_u clip_C(mean of the unit's per-record gradients)."""
    from opacus import GradSampleModule

    model, tok = load_artifact(base_dir)
    model.train()
    ex = make_examples(5)
    enc = encode_examples(tok, ex)
    unit_of = [0, 0, 0, 1, 1]
    C = 0.05  # small: both units are clipped
    params = [p for p in model.parameters() if p.requires_grad]
    naive = [torch.zeros_like(p) for p in params]
    for u in (0, 1):
        rows = [i for i in range(5) if unit_of[i] == u]
        grads = [torch.zeros_like(p) for p in params]
        for i in rows:
            model.zero_grad()
            per_example_nll(model, collate([enc[i]], tok.pad_token_id)).sum().backward()
            for g, p in zip(grads, params, strict=True):
                g += p.grad / len(rows)
        norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads))
        assert norm > C
        for acc, g in zip(naive, grads, strict=True):
            acc += g * (C / (norm + 1e-6))
    model.zero_grad()
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    sums, norms, _, _ = clipped_unit_sum(
        gsm, params, collate(enc, tok.pad_token_id), torch.tensor(unit_of),
        torch.tensor([1 / 3] * 3 + [1 / 2] * 2), 2, C)
    gsm._close()
    assert norms.shape == (2,) and bool((norms > C).all())
    for a, b in zip(sums, naive, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    total = math.sqrt(sum(float(s.pow(2).sum()) for s in sums))
    assert total <= 2 * C + 1e-6  # sensitivity: each unit contributes at most C


def test_subject_level_ledger_is_recomputable(tmp_path, base_dir, subject_examples):
    from opacus.accountants import PRVAccountant, RDPAccountant

    led = train_dp_base(base_dir, subject_examples, tmp_path / "dp", target_epsilon=8.0, epochs=1,
                        lr=1e-3, batch_size=4, max_records_per_unit=2,
                        tokenizer_provenance={"kind": "public_corpus", "name": "wikitext2",
                                              "sha256": "ab" * 32})
    assert led.privacy_unit == "subject" and led.n_units == 24 and led.n_records == 48
    assert led.sample_rate == pytest.approx(4 / 24) and led.steps == 6
    assert led.expected_units_per_step == pytest.approx(4.0)
    assert led.delta == pytest.approx(1 / 240) and led.records_without_subject == 0
    assert led.max_records_per_unit == 2 and led.unit_aggregation == "mean"
    assert led.tokenizer_provenance == {"kind": "public_corpus", "name": "wikitext2", "sha256": "ab" * 32}
    assert "os.urandom" in led.noise_source and any("private corpus" in x for x in led.limitations)
    assert led.weights_sha256 == weights_sha256(tmp_path / "dp")
    # an auditor recomputes ε from the ledger alone, with opacus' accountants
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "optimal order is the largest alpha" must not fire
        rdp = RDPAccountant()
        rdp.history = [(led.noise_multiplier, led.sample_rate, led.steps)]
        eps_rdp = rdp.get_epsilon(delta=led.delta, alphas=led.rdp_alphas)
    assert eps_rdp == pytest.approx(led.epsilons["rdp"], rel=1e-9)
    assert RDP_ALPHAS[0] < led.rdp_optimal_order < RDP_ALPHAS[-1]
    prv = PRVAccountant()
    prv.history = [(led.noise_multiplier, led.sample_rate, led.steps)]
    assert prv.get_epsilon(delta=led.delta, eps_error=0.01) == pytest.approx(led.epsilons["prv"], rel=1e-6)
    assert led.epsilon == led.epsilons[led.accountant] <= led.target_epsilon
    assert led.epsilon >= 0.99 * led.target_epsilon - 1e-6  # σ not larger than needed
    model, _ = load_artifact(tmp_path / "dp")
    assert not any(k.startswith("_module") for k in model.state_dict())


def test_subject_level_pack_mode_and_default_provenance(tmp_path, base_dir, subject_examples):
    led = train_dp_base(base_dir, subject_examples, tmp_path / "dpp", target_epsilon=8.0, epochs=1,
                        lr=1e-3, batch_size=4, unit_gradient="pack", accountant="rdp")
    assert led.unit_gradient == "pack" and led.accountant == "rdp" and led.steps == 6
    assert led.tokenizer_provenance["kind"] == "unrecorded"
    load_artifact(tmp_path / "dpp")


@pytest.mark.parametrize("kwargs, match", [
    ({"privacy_unit": "subject", "per_subject": 6}, "at least 20 privacy units"),  # 8 subjects
    ({"delta": 1 / 24}, "delta"),                                                 # δ = 1/N_units
    ({"max_records_per_unit": 0}, "max_records_per_unit"),
    ({"batch_size": 24}, "batch_size"),                                           # = N_units
    ({"batch_size": None, "sample_rate": 1.5}, "sample_rate"),
    ({"accountant": "gdp"}, "accountant"),
    ({"unit_gradient": "concat"}, "unit_gradient"),
    ({"tokenizer_provenance": {"kind": "private_corpus", "name": "demo", "sha256": ""}}, "provenance"),
    ({"tokenizer_provenance": {"kind": "unknown"}}, "provenance"),
    ({"tokenizer_provenance": {"name": "x"}}, "kind"),
    ({"secure_mode": True}, "torchcsprng"),
])
def test_bad_input_refused_before_training(tmp_path, base_dir, examples, kwargs, match):
    kwargs = dict(kwargs)
    per_subject = kwargs.pop("per_subject", 2)
    kw = {"target_epsilon": 8.0, "epochs": 1, "lr": 1e-3, "batch_size": 4, "accountant": "rdp",
          **kwargs}
    if kw.get("batch_size") is None:
        kw.pop("batch_size")
    with pytest.raises(UnlearningInputError, match=match):
        train_dp_base(base_dir, with_subjects(examples, per_subject), tmp_path / "o", **kw)
    assert not (tmp_path / "o").exists()


def test_two_dp_runs_differ_two_non_dp_runs_identical(tmp_path, base_dir, examples):
    from unlearning_engine.modeling import save_artifact
    from unlearning_engine.training import train_causal_lm

    kw = dict(target_epsilon=8.0, epochs=1, lr=1e-3, batch_size=8, seed=0, accountant="rdp")
    a = train_dp_base(base_dir, examples, tmp_path / "a", **kw)
    b = train_dp_base(base_dir, examples, tmp_path / "b", **kw)
    assert a.noise_multiplier == b.noise_multiplier and a.steps == b.steps
    assert a.weights_sha256 != b.weights_sha256  # noise and sampling not replayable from the seed
    shas = []
    for name in ("c", "d"):
        model, tok = load_artifact(base_dir)
        train_causal_lm(model, tok, examples[:16], epochs=1, lr=1e-3, batch_size=8, seed=0)
        shas.append(save_artifact(model, tok, tmp_path / name))
    assert shas[0] == shas[1]


def test_accounting_auto_prefers_tighter_and_account_refuses_overspend():
    acc = calibrate(8.0, 1e-6, 0.1, 80, "auto")
    rdp_only = calibrate(8.0, 1e-6, 0.1, 80, "rdp")
    assert acc.accountant == "prv" and acc.noise_multiplier < rdp_only.noise_multiplier
    assert acc.epsilon <= 8.0 and rdp_only.epsilon <= 8.0
    eps, order = rdp_epsilon(rdp_only.noise_multiplier, 0.1, 80, 1e-6)
    assert eps == pytest.approx(rdp_only.epsilon) and order == rdp_only.rdp_optimal_order
    with pytest.raises(PrivacyBudgetError):
        account(acc.noise_multiplier, 0.1, 160, 1e-6, 8.0, "prv")  # twice the steps: over budget
