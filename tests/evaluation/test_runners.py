"""Scalability / sustainability runners (evaluation.runners) on the unit-test model preset."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evaluation import runners
from evaluation.runners import (
    ROW_KEYS,
    SERIES_KEYS,
    STEP_KEYS,
    RunnerConfig,
    run_scalability,
    run_sustainability,
    select_authors,
)

TOFU = Path(runners.TOFU_DIR)
pytestmark = pytest.mark.skipif(not (TOFU / "full.json").is_file(), reason="TOFU data not present")
AUTHORS = 5
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runners")


def _cfg(out_dir, **kw) -> RunnerConfig:
    # 1-epoch test models are not meant to be good: the methods' collapse check is off
    return RunnerConfig(out_dir=str(out_dir), methods=["dp2"], authors=AUTHORS, preset="test",
                        requests=2, sizes=(1, 2), quick=True, target_epochs=1, dp_base_epochs=1,
                        unlearn_epochs=1, collapse_check=False, **kw)


def test_select_authors():
    subset, cands = select_authors(5, 2)
    assert subset == [0, 1, 2, 198, 199] and cands == [198, 199]
    with pytest.raises(ValueError):
        select_authors(3, 3)


@pytest.fixture(scope="module")
def sustainability(out_dir):
    # module fixtures run before conftest's function-scoped one-thread fixture: with 2 threads on
    # 2 shared cores, torch's intra-op threads oversubscribe and the tiny runs get ~10x slower
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield run_sustainability(_cfg(out_dir), log=lambda m: None)
    finally:
        torch.set_num_threads(before)


def test_sustainability_dp2_cumulative_retain(sustainability, out_dir):
    doc = sustainability["dp2"]
    steps = doc["series"]
    assert [s["forgotten_count"] for s in steps] == [1, 2]
    assert [s["request"] for s in steps] == [1, 2]
    for i, s in enumerate(steps, start=1):
        assert s["status"] == "ok"
        assert s["start"] == "dp_base"
        assert s["forget_records"] == 20
        # D_r = corpus minus ALL authors forgotten so far (DESIGN §6.5)
        assert s["retain_records"] == 20 * (AUTHORS - i)
        assert s["forgotten_authors"] == [198, 199][:i]
        assert s["privleak_reference"]["type"] == "ideal"
        assert s["privleak_reference"]["flagged"] is True
        assert s["metrics"]["knowmem_retain"]["status"] == "ok"
        assert s["metrics"]["knowmem_retain"]["ci95"] is not None
        assert s["metrics"]["privleak"]["status"] == "ok"
        assert s["tokens"] > 0 and s["wall_seconds"] > 0
        assert set(STEP_KEYS) <= set(s)


def test_sustainability_json_and_png(sustainability, out_dir):
    data = json.loads((out_dir / "sustainability_dp2.json").read_text())
    assert set(SERIES_KEYS) <= set(data)
    assert data["kind"] == "sustainability" and data["method"] == "dp2"
    assert "2504.13774" in data["source"] and "2407.06460" in data["source"]
    assert data["profile"]["name"] == "tofu-qa-v1"
    assert data["settings"]["requests"] == 2 and data["settings"]["quick"] is True
    assert data["setup"]["authors"] == [0, 1, 2, 198, 199]
    png = out_dir / "sustainability.png"
    assert png.is_file() and png.read_bytes()[:8] == PNG_MAGIC


def test_scalability_rows(sustainability, out_dir):
    # same subset (k = 2) as the sustainability run: the cached setup is reused; not quick:
    # an exact retrain reference is trained per forget set
    cfg = _cfg(out_dir)
    cfg.quick = False
    res = run_scalability(cfg, log=lambda m: None)
    doc = res["dp2"]
    assert doc["setup"]["reused"] is True
    rows = doc["series"]
    assert [r["forget_count"] for r in rows] == [1, 2]
    assert [r["forget_records"] for r in rows] == [20, 40]
    assert [r["retain_records"] for r in rows] == [80, 60]
    for r in rows:
        assert set(ROW_KEYS) <= set(r)
        assert r["tokens"] > 0
        assert r["privleak_reference"]["type"] == "retrain"
        assert r["privleak_reference"]["flagged"] is False
        assert "mink_auc" in r["privleak_reference"]["retrain_metrics"]
        for m in ("verbmem_forget", "knowmem_forget", "knowmem_retain", "mink_auc", "privleak"):
            assert m in r["metrics"]
    data = json.loads((out_dir / "scalability_dp2.json").read_text())
    assert set(SERIES_KEYS) <= set(data)
    assert (out_dir / "scalability.png").read_bytes()[:8] == PNG_MAGIC


def test_cli_parser():
    args = runners.build_parser().parse_args(
        ["sustainability", "--method", "dp2", "--method", "npo_gd", "--out", "x", "--requests",
         "3", "--preset", "test", "--quick"])
    cfg = runners.config_from_args(args)
    assert cfg.methods == ["dp2", "npo_gd"] and cfg.requests == 3 and cfg.quick
    assert cfg.preset == "test" and cfg.sizes == (1, 2, 4)


def test_hp_leaves_out_overrides_a_method_does_not_have(out_dir):
    """Regression: ``--no-collapse-check``/``--unlearn-epochs`` made every ``eco`` run fail with
    "unknown hyper-parameter(s) for method 'eco'" (eco trains nothing)."""
    cfg = _cfg(out_dir)
    assert runners._hp(cfg, "eco") == {"preset": "test"}
    assert runners._hp(cfg, "npo_gd") == {"preset": "test", "epochs": 1, "collapse_check": False}
    assert runners._hp(cfg) == {"preset": "test", "epochs": 1, "collapse_check": False}


def test_smollm2_preset_recipe_and_profile(out_dir):
    cfg = RunnerConfig(out_dir=str(out_dir), preset="smollm2-135m-lora")
    rec = runners._recipe(cfg)
    assert rec["model"]["base"] == "SmolLM2-135M-Instruct"
    assert rec["target"]["lora"]["r"] == 16 and rec["dp_base"]["lora"]["r"] == 16
    assert rec["target"]["epochs"] == 4 and rec["dp_base"]["target_epsilon"] == 8.0
    prof = cfg.eval_profile()
    assert prof.verbmem_max_new_tokens == 48 and prof.max_retain_examples == 40


def test_dp2_steps_reaches_dp2_only():
    """--dp2-steps (issue 15 item 3): dp2 gets a fixed step budget, other methods are unchanged."""
    from evaluation.runners import RunnerConfig, _hp, build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(
        ["sustainability", "--method", "dp2", "--out", "x", "--dp2-steps", "288"]))
    assert cfg.dp2_steps == 288
    assert _hp(cfg, "dp2")["steps"] == 288 and "steps" not in _hp(cfg, "npo_gd")
    assert "steps" not in _hp(RunnerConfig(out_dir="x"), "dp2")
