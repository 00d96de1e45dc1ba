import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.runner import (
    format_table,
    load_model,
    make_profile,
    parse_overrides,
    run_evaluation,
)

from .bench_fixtures import write_muse, write_tofu

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_llama, bos_tokenizer):
    d = tmp_path_factory.mktemp("model")
    tiny_llama.save_pretrained(d, safe_serialization=True)
    bos_tokenizer.save_pretrained(d)
    return d


def test_cli_end_to_end_subprocess(saved_model, tmp_path):
    data = write_muse(tmp_path / "muse", n=6)
    out = tmp_path / "r" / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "evaluation", "--model", str(saved_model), "--profile",
         "muse_news", "--data-dir", str(data), "--limit", "5", "--bootstrap", "20",
         "--retrained", str(saved_model), "--set", "verbmem_max_new_tokens=24",
         "--set", "knowmem_max_new_tokens=8", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for label in ("VerbMem_f", "KnowMem_f", "KnowMem_r", "PrivLeak", "95% CI"):
        assert label in proc.stdout
    rep = json.loads(out.read_text())
    assert rep["model"]["loader"] and len(rep["model"]["weights_sha256"]) == 64
    assert rep["profile"]["limit"] == 5 and rep["metrics"]["verbmem_forget"]["n"] == 5
    assert rep["profile"]["verbmem_max_new_tokens"] == 24
    # the same weights as the retrained reference: PrivLeak exactly 0, reference = retrain
    assert rep["privleak"]["reference_type"] == "retrain" and rep["privleak"]["flagged"] is False
    assert rep["metrics"]["privleak"]["value"] == 0.0
    assert rep["retrained"]["metrics"]["mink_auc"] == rep["metrics"]["mink_auc"]
    bad = subprocess.run(
        [sys.executable, "-m", "evaluation", "--model", str(saved_model), "--profile", "x"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2


def test_run_evaluation_tofu_in_process(saved_model, tmp_path):
    data = write_tofu(tmp_path / "tofu", n=5)
    ret = tmp_path / "retrained.json"
    short = {"generation_max_new_tokens": 12, "verbmem_max_new_tokens": 12,
             "knowmem_max_new_tokens": 8}
    kw = dict(data_dir=data, bootstrap_resamples=20, overrides=short)
    # a precomputed retrained report file is accepted as --retrained
    r0 = run_evaluation(saved_model, "tofu", out=ret, **kw)
    rep = run_evaluation(saved_model, "tofu", retrained=ret, **kw)
    assert rep["metrics"]["forget_quality"]["value"] == pytest.approx(1.0)
    assert rep["privleak"]["reference_type"] == "retrain"
    assert rep["retrained"]["metrics"] == r0["metrics"] and "warnings" not in rep
    # a reference evaluated with another TOFU profile is flagged (issue 24)
    paper = tmp_path / "retrained_paper.json"
    run_evaluation(saved_model, "tofu_paper", out=paper, **kw)
    mixed = run_evaluation(saved_model, "tofu", retrained=paper, **kw)
    assert any("'tofu_paper'" in w and "truth_ratio_mean" in w for w in mixed["warnings"])
    other = run_evaluation(saved_model, "tofu", retrained=ret, limit=4, **kw)
    assert "different rows" in other["warnings"][0] and "WARNING" in format_table(other)
    table = format_table(rep)
    for label in ("ForgetQuality", "ModelUtility", "PrivLeak", "KnowMem_r"):
        assert label in table
    with pytest.raises(ValueError):
        run_evaluation(saved_model, "tofu", reference_auc=0.5, retrained=ret, **kw)
    with pytest.raises(ValueError):
        run_evaluation(saved_model, "tofu", reference_auc=1.5, **kw)
    with pytest.raises(ValueError, match="no_such"):
        make_profile("tofu", overrides={"no_such": 1})
    assert parse_overrides(["a=1", "b=x", "c=[1, 2]"]) == {"a": 1, "b": "x", "c": [1, 2]}


def test_make_profile_named_tofu_profiles():
    """``--profile tofu`` keeps its ds_size 300 unless ``--limit`` or ``--set limit=null``
    says otherwise; ``tofu_paper`` evaluates every row by default."""
    t = make_profile("tofu", forget_split="forget05")
    assert (t.name, t.limit, t.forget_split, t.truth_ratio_mean) == (
        "tofu", 300, "forget05", "geometric")
    assert make_profile("tofu", limit=7).limit == 7
    assert make_profile("tofu", overrides={"limit": None}).limit is None
    p = make_profile("tofu_paper", seed=3)
    assert (p.name, p.limit, p.seed, p.truth_ratio_mean) == ("tofu_paper", None, 3, "arithmetic")
    with pytest.raises(ValueError, match="name"):
        make_profile("tofu", overrides={"name": "tofu_paper"})


def test_load_model_fallback(saved_model, monkeypatch):
    import unlearning_engine.modeling as modeling

    def broken(path, device="cpu"):
        raise RuntimeError("boom")

    monkeypatch.setattr(modeling, "load_artifact", broken)
    model, tok, info = load_model(saved_model)
    assert info["loader"] == "transformers.AutoModelForCausalLM"
    assert "boom" in info["load_artifact_error"] and tok("a b")["input_ids"]


def test_manage_py_evaluate_command(saved_model, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    data = write_muse(tmp_path / "muse", n=5)
    out = tmp_path / "rep.json"
    buf = StringIO()
    call_command("evaluate", "--model", str(saved_model), "--profile", "muse_news",
                 "--data-dir", str(data), "--reference-auc", "0.5", "--bootstrap", "10",
                 "--set", "verbmem_max_new_tokens=16", "--set", "knowmem_max_new_tokens=8",
                 "--out", str(out), stdout=buf)
    assert "VerbMem_f" in buf.getvalue() and "PrivLeak" in buf.getvalue()
    rep = json.loads(out.read_text())
    assert rep["privleak"]["reference_type"] == "supplied" and rep["privleak"]["reference"] == 0.5
