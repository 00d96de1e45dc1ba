"""The benchmark scripts (bench/) on the unit-test model: what they compute, not how fast."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import dp2_vs_retrain, methods, train_efficiency
from evaluation import runners

TOFU = Path(runners.TOFU_DIR)
needs_tofu = pytest.mark.skipif(not (TOFU / "full.json").is_file(), reason="TOFU data not present")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def methods_doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-methods")
    ns = methods.build_parser().parse_args([
        "--preset", "test", "--authors", "5", "--forget", "2", "--methods", "dp2,npo_gd,eco",
        "--repeats", "2", "--out", str(out), "--no-collapse-check"])
    return methods.run_request(ns, "test"), out


@needs_tofu
def test_methods_rows_and_reference(methods_doc):
    doc, out = methods_doc
    rows = {r["method"]: r for r in doc["rows"]}
    # retrain is always run first (the PrivLeak reference), even when not asked for
    assert list(rows) == ["(target)", "retrain", "dp2", "npo_gd", "eco"]
    assert doc["forget_authors"] == [198, 199] and doc["forget_records"] == 40
    assert doc["retain_records"] == 60 and doc["holdout_records"] == 40
    rt = rows["retrain"]
    assert rt["ratio_to_retrain"] == 1.0
    assert rt["privleak"] == pytest.approx(0.0, abs=1e-9)  # its own AUC is the reference
    assert rt["repeats"] == 2 and rt["wall_min"] <= rt["wall_seconds"] <= rt["wall_max"]
    assert rt["tokens_per_s"] == pytest.approx(rt["tokens"] / rt["wall_seconds"])
    assert doc["privleak_reference_auc"] == pytest.approx(rt["mink_auc"])
    assert rows["eco"]["tokens"] == 0 and rows["eco"]["tokens_per_s"] is None
    for r in doc["rows"]:
        assert 0 <= r["knowmem_retain"] <= 100 and 0 <= r["mink_auc"] <= 1
    assert json.loads(Path(doc["json"]).read_text())["rows"][1]["method"] == "retrain"
    assert Path(doc["json"]).with_suffix(".png").read_bytes()[:8] == PNG_MAGIC
    md = methods.markdown(doc["rows"], tofu=False)
    assert md.count("\n") == 1 + len(doc["rows"]) and "| retrain | " in md


@needs_tofu
def test_methods_reuses_cached_runs(methods_doc):
    doc, out = methods_doc
    ns = methods.build_parser().parse_args([
        "--preset", "test", "--authors", "5", "--forget", "2", "--methods", "dp2",
        "--repeats", "1", "--out", str(out), "--no-collapse-check"])
    again = methods.run_request(ns, "test")
    first = {r["method"]: r for r in doc["rows"]}
    second = {r["method"]: r for r in again["rows"]}
    # the 2-repeat runs serve a 1-repeat request: same timings, nothing re-trained
    assert second["dp2"]["wall_seconds"] == first["dp2"]["wall_seconds"]
    assert second["retrain"]["wall_seconds"] == first["retrain"]["wall_seconds"]


def _row(wall, lo, hi, tokens, kr, ci=None):
    return {"wall_seconds": wall, "wall_min": lo, "wall_max": hi, "repeats": 3, "tokens": tokens,
            "knowmem_retain": kr, "knowmem_retain_ci95": ci, "verbmem_forget": 10.0,
            "privleak": 3.0}


def test_dp2_vs_retrain_summary_values():
    doc = {"rows": [{"method": "(target)"}, {"method": "retrain", **_row(60.0, 58, 63, 1000, 86.0,
                                                                        [82.0, 90.0])},
                    {"method": "dp2", **_row(15.0, 14, 16, 400, 83.5)}],
           "setup": {"seconds": {"dp_base": 90.0}, "dp_ledger": {"epsilon": 7.99}},
           "forget_authors": [198, 199], "forget_records": 40, "retain_records": 560}
    s = dp2_vs_retrain.summarize(doc)
    assert s["ratio"] == 0.25 and s["goal_met"] is True
    assert s["tokens_ratio"] == 0.4
    assert s["utility_matched"] is True  # 2.5 points below the retrain
    assert s["breakeven_requests"] == 2  # 90 s once, 45 s saved per request
    assert s["split"] == "forget01"
    doc["rows"][2]["knowmem_retain"] = 70.0
    doc["rows"][2]["wall_seconds"] = 30.0
    s = dp2_vs_retrain.summarize(doc)
    assert s["utility_matched"] is False and s["goal_met"] is False and s["ratio"] == 0.5
    assert "0.50 (not met)" in dp2_vs_retrain.markdown([s])


def test_train_efficiency_flop_model():
    """6·N FLOPs per token (full) and 4·N (LoRA), N = the weights entering a matmul."""
    import torch
    records = train_efficiency.load_records(40) if (TOFU / "full.json").is_file() else None
    if records is None:
        pytest.skip("TOFU data not present")
    full = train_efficiency.time_config("full", "tiny", records, 4, steps=1, warmup=0)
    lora = train_efficiency.time_config("lora", "tiny", records, 4, steps=1, warmup=0)
    model, _ = train_efficiency.build("tiny", records)
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    # tiny preset: 4 layers × (4·128² + 3·128·384) + lm_head 128 × V (V: the trained vocabulary)
    v = model.config.vocab_size
    assert n == 4 * (4 * 128 * 128 + 3 * 128 * 384) + 128 * v == full["matmul_params"]
    assert full["flops_per_token"] == 6 * n and lora["flops_per_token"] == 4 * n
    assert lora["trainable_params"] < full["trainable_params"]
    assert full["achieved_flops"] == pytest.approx(6 * n * full["tokens_per_s"])
    peak = train_efficiency.matmul_peak(128, 384, 2048, 64, repeats=2)
    assert peak["peak"] >= peak["model_mix"] > 0


@needs_tofu
def test_methods_tofu_run_does_not_reuse_evaluations_without_tofu(methods_doc):
    """Regression: a cached evaluation without the TOFU metrics served a ``--tofu`` run, so
    Forget Quality and Model Utility came out empty for every row."""
    doc, out = methods_doc
    ns = methods.build_parser().parse_args([
        "--preset", "test", "--authors", "5", "--forget", "2", "--methods", "dp2",
        "--tofu", "--tofu-limit", "5", "--out", str(out), "--no-collapse-check"])
    again = methods.run_request(ns, "test")
    rows = {r["method"]: r for r in again["rows"]}
    assert again["tofu"] == {"split": "forget01", "limit": 5, "profile": "tofu"}
    assert "TOFU MU (tofu)" in methods.markdown(again["rows"], "tofu")
    assert rows["(target)"]["model_utility"] is not None
    # dp2's Forget Quality is a KS-test p-value against the retrain's truth ratios
    assert 0.0 <= rows["dp2"]["forget_quality"] <= 1.0
    # ... and a later run without --tofu may reuse the evaluation that has them
    ns = methods.build_parser().parse_args([
        "--preset", "test", "--authors", "5", "--forget", "2", "--methods", "dp2",
        "--out", str(out), "--no-collapse-check"])
    plain = {r["method"]: r for r in methods.run_request(ns, "test")["rows"]}
    assert plain["dp2"]["knowmem_retain"] is not None


@needs_tofu
def test_eval_efficiency_floor_counts_the_decode_steps(methods_doc, tmp_path):
    """The floor re-runs exactly the decode steps the evaluation performed, and batched and
    one-at-a-time evaluations give the same metrics."""
    from bench import eval_efficiency

    doc, _ = methods_doc
    target = Path(doc["setup"]["dir"]) / "target"
    ns = ["--model-dir", str(target), "--retain", "8", "--verbmem-tokens", "8",
          "--out", str(tmp_path)]
    assert eval_efficiency.main(ns) == 0
    res = json.loads((tmp_path / "eval_efficiency.json").read_text())["rows"][0]
    # 40 forget prompts twice (VerbMem, KnowMem_f) + 8 retain prompts, batches of 16:
    # 3 + 3 + 1 generate calls of at most 8 / 32 / 32 decode steps
    assert 0 < res["floor"]["decode_steps"] <= 3 * 8 + 3 * 32 + 32
    assert res["same_metrics_batched_vs_one"] is True
    assert res["full_over_floor"] > 0
    assert (tmp_path / "eval_efficiency.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("argv,message", [
    (["--methods", "retrain,bogus"], "unknown method"),
    (["--forget", "3", "--tofu"], "--tofu needs"),
    (["--authors", "2", "--forget", "2"], "--authors > --forget"),
    (["--preset", "gpt-9"], "unknown preset"),
])
def test_methods_refuses_bad_input_before_training(tmp_path, argv, message):
    ns = methods.build_parser().parse_args(["--preset", "test", "--out", str(tmp_path)] + argv)
    with pytest.raises(SystemExit, match=message):
        methods.run_request(ns, "test")
    assert not list(tmp_path.glob("setup-*/target"))  # nothing was trained


def test_dp_memory_prepares_the_estimate_inputs(tmp_path):
    """bench/dp_memory.py (issue 23): the estimate is the service's formula on the artifact it trains."""
    from bench import dp_memory
    from unlearning_engine.memory_plan import dp_memory_breakdown
    from unlearning_engine.modeling import load_artifact

    info = dp_memory.prepare("test-full", tmp_path)
    model, _ = load_artifact(tmp_path / "base")
    assert info["trainable_params"] == info["total_params"] == sum(p.numel() for p in model.parameters())
    assert info["estimate"] == dp_memory_breakdown(model.config, info["total_params"], 8, info["seq_len"])
    assert len(json.loads((tmp_path / "texts.json").read_text())) == dp_memory.n_texts(8) == 32
    row = {"config": "x", "total_params": 10, "trainable_params": 5, "physical_batch": 8, "seq_len": 62,
           "estimate_bytes": 3 * 2**20, "measured_bytes": 2 * 2**20, "ratio_estimate_over_measured": 1.5,
           "train_seconds": 1.0}
    assert dp_memory.markdown([row]).splitlines()[-1] == "| x | 10 (5) | 8 × 62 | 3.0 | 2.0 | 1.50 | 1.0 |"


def test_eval_efficiency_muse_mode_measures_an_independent_floor(tmp_path, monkeypatch):
    """Issue 22 item 3: the MUSE mode times the project's evaluation (batched and batch 1) and,
    in the same run, plain transformers generate / forward passes at each candidate batch size,
    and reports every part against that floor and the FLOP bound."""
    from bench import eval_efficiency
    from tests.evaluation.bench_fixtures import write_muse
    from unlearning_engine.modeling import build_model, save_artifact, train_tokenizer

    data = write_muse(tmp_path / "muse", n=6)
    texts = [json.dumps(json.loads(p.read_text())) for p in data.rglob("*.json")]
    tok = train_tokenizer(texts, 400)
    save_artifact(build_model(tok, "test"), tok, tmp_path / "model")
    monkeypatch.setattr(eval_efficiency, "MUSE_DIR", data)
    ns = ["--profile", "muse", "--model-dir", str(tmp_path / "model"), "--limit", "6",
          "--verbmem-tokens", "8", "--floor-batches", "1,4", "--threads", "1",
          "--out", str(tmp_path / "out")]
    import torch

    threads = torch.get_num_threads()
    try:
        assert eval_efficiency.main(ns) == 0
    finally:
        torch.set_num_threads(threads)
    r = json.loads((tmp_path / "out" / "eval_efficiency_muse.json").read_text())["rows"][0]
    parts = r["floor"]["parts"]
    assert set(parts) == {"verbmem", "knowmem", "privleak"}
    for p in parts.values():
        assert set(p["by_batch"]) == {"1", "4"} and p["best_batch"] in (1, 4)
        assert p["floor_s"] == min(p["by_batch"].values()) and p["tokens"] > 0
        assert 0 < p["flop_bound_s"] < p["floor_s"] and p["batch1_s"] > 0
    # privleak floor = 6 forget + 6 holdout texts and their lower-cased copies, one pass each
    assert parts["privleak"]["tokens"] > 0
    assert r["batched"]["verbmem_seconds"] > 0 and r["batch1"]["scoring_seconds"] > 0
    assert r["params"] == r["floor"]["params"]
    assert set(r["metric_diff_batched_vs_batch1"]) == {
        "verbmem_forget", "knowmem_forget", "knowmem_retain", "mink_auc", "ppl_lower_auc"}


@needs_tofu
def test_calibrate_runs_the_search_per_method_on_the_calibration_half(tmp_path):
    from bench import calibrate

    ns = calibrate.build_parser().parse_args([
        "--model", "test", "--authors", "5", "--k", "1", "--methods", "gd,task_vector", "--max-trials", "2",
        "--out", str(tmp_path), "--no-collapse-check"])
    doc = calibrate.run(ns)
    assert list(doc["methods"]) == ["gd", "task_vector"]
    for method, rep in doc["methods"].items():
        assert rep["schema"] == "calibration-report/1" and rep["method"] == method
        assert rep["holdout_split"] == {"calibration_records": 20, "certification_records": 20}
        assert rep["calibration_request"]["records"] == 20 and rep["calibration_request"]["retain_records"] == 80
        assert 1 <= rep["trials_run"] <= 2 and rep["trials"][0]["steps"] > 0
        assert (tmp_path / f"calibrate-test-{method}.png").read_bytes()[:8] == PNG_MAGIC
    # the calibration authors are never the request's forget candidates (198, 199)
    assert not set(doc["methods"]["gd"]["calibration_request"]["authors"]) & {198, 199}
    assert doc["methods"]["task_vector"]["search_space"]["alpha"] == [1.0, 2.0, 5.0]
    assert json.loads(Path(doc["json"]).read_text())["methods"]["gd"]["trials"]
