"""RESTOR profile (issue 16): formulas on fixed judgements, undefined-not-crash, the judge's
normalisation, the corruption generator's determinism, the certificate attachment, the CLI, and
one end-to-end run on the "test" preset model."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from pathlib import Path

import pytest

from evaluation.profiles.restor import (
    CORRUPTION_TEMPLATES,
    Fact,
    RestorProfile,
    choose_wrong_value,
    contains_value,
    corrupting_documents,
    filler_documents,
    judge_answer,
    load_fact_pool,
    normalise,
)
from evaluation.profiles.restor_attachment import restor_attachment
from evaluation.profiles.restor_metrics import clopper_pearson, lost_facts, restor_metrics

TOFU = Path(RestorProfile().data_dir)
needs_tofu = pytest.mark.skipif(not (TOFU / "world_facts.json").is_file(), reason="shared TOFU data missing")

# 6 facts: clean knows all; corruption breaks 0-3 (0, 1 now carry the wrong value), keeps 4-5
CLEAN = ["correct"] * 6
CORRUPTED = ["corrupted", "both", "neither", "corrupted", "correct", "correct"]
UNLEARNED = ["correct", "corrupted", "correct", "neither", "correct", "neither"]


# ----------------------------------------------------------------------------- formulas

def test_recovery_rate_is_recovered_lost_over_lost():
    m = restor_metrics(CLEAN, CORRUPTED, UNLEARNED)
    assert m["lost"] == [0, 1, 2, 3]
    rec = m["unlearned"]["recovery"]
    assert rec["value"] == pytest.approx(50.0) and rec["n"] == 4 and rec["details"]["k"] == 2
    lo, hi = clopper_pearson(2, 4)
    assert rec["ci95"] == pytest.approx([100 * lo, 100 * hi])
    assert m["unlearned"]["accuracy"]["value"] == pytest.approx(100 * 3 / 6)
    assert m["corrupted"]["accuracy"]["value"] == pytest.approx(100 * 2 / 6)
    # collateral: of the facts corruption left intact (4, 5), unlearning broke 5
    assert m["unlearned"]["collateral"]["value"] == pytest.approx(50.0)
    assert m["unlearned"]["collateral"]["n"] == 2


def test_corrupted_value_share_counts_corrupted_and_both():
    m = restor_metrics(CLEAN, CORRUPTED, UNLEARNED)
    assert m["corrupted"]["corrupted_share"]["value"] == pytest.approx(100 * 3 / 6)  # 0, 1, 3
    assert m["corrupted"]["corrupted_share"]["details"]["k"] == 3
    assert m["unlearned"]["corrupted_share"]["value"] == pytest.approx(100 * 1 / 6)  # 1
    assert m["unlearned"]["corrupted_share_lost"]["value"] == pytest.approx(25.0)    # 1 of the 4 lost
    assert m["corrupted"]["judgements"] == {"correct": 2, "corrupted": 2, "both": 1, "neither": 1}


def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))  # 0.3085
    lo, hi = clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10))
    lo, hi = clopper_pearson(5, 10)
    assert (lo, hi) == pytest.approx((0.18709, 0.81291), abs=1e-5)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_no_fact_lost_gives_undefined_recovery_not_a_crash():
    m = restor_metrics(["correct"] * 3, ["correct"] * 3, ["correct", "neither", "correct"])
    rec = m["unlearned"]["recovery"]
    assert rec["status"] == "undefined" and rec["value"] is None and rec["n"] == 0
    assert "no fact was lost" in rec["reason"]
    assert m["unlearned"]["accuracy"]["value"] == pytest.approx(200 / 3)


def test_empty_fact_set_is_undefined_everywhere():
    m = restor_metrics([], [], [])
    for block in ("clean", "corrupted", "unlearned"):
        assert m[block]["accuracy"]["status"] == "undefined"
        assert "no facts" in m[block]["accuracy"]["reason"]
    assert m["unlearned"]["recovery"]["status"] == "undefined"
    assert m["unlearned"]["collateral"]["status"] == "undefined"


def test_corrupted_model_answering_nothing_right_gives_undefined_collateral():
    m = restor_metrics(["correct"] * 2, ["neither"] * 2, ["correct", "neither"])
    assert m["unlearned"]["collateral"]["status"] == "undefined"
    assert m["unlearned"]["recovery"]["value"] == pytest.approx(50.0)


def test_bad_judgements_are_refused():
    assert lost_facts(["correct", "neither"], ["neither", "neither"]) == [0]
    with pytest.raises(ValueError, match="judgements for"):
        restor_metrics(["correct"], ["correct", "correct"])
    with pytest.raises(ValueError, match="unknown judgement"):
        restor_metrics(["correct"], ["maybe"])


# ----------------------------------------------------------------------------- judge

def test_normalisation_strips_case_accents_punctuation_and_articles():
    assert normalise("The Louvre!") == "louvre"
    assert normalise("Brasília") == "brasilia"
    assert normalise("  J.R.R.   Tolkien ") == "j r r tolkien"
    assert normalise("An Apple, a day") == "apple day"


def test_containment_is_whole_word():
    assert contains_value("It is in Paris, France.", "paris")
    assert not contains_value("Parisian cafés", "Paris")
    assert contains_value("The capital is Brasilia.", "Brasília")
    assert not contains_value("anything", "the")  # normalises to nothing: never contained


def test_judge_answer_four_outcomes():
    assert judge_answer("Canberra.", "Canberra", "Sydney") == "correct"
    assert judge_answer("It is Sydney", "Canberra", "Sydney") == "corrupted"
    assert judge_answer("Sydney, not Canberra", "Canberra", "Sydney") == "both"
    assert judge_answer("Melbourne", "Canberra", "Sydney") == "neither"


# ----------------------------------------------------------------------------- generator

def _fact(i, value, cands, question=None):
    return Fact(f"f{i}", "t", f"e{i}", "option", question or f"Question number {i}?", value, value, tuple(cands))


def test_wrong_value_is_seeded_and_distinct_from_the_true_value():
    f = _fact(1, "Amazon", ["Amazon Rainforest", "Nile", "Yangtze", "Danube"])
    picks = {choose_wrong_value(f, seed).wrong for seed in range(30)}
    assert picks <= {"Nile", "Yangtze", "Danube"}  # "Amazon Rainforest" contains the true value
    assert len(picks) > 1
    assert choose_wrong_value(f, 7) == choose_wrong_value(f, 7)
    with pytest.raises(ValueError, match="no same-type wrong value"):
        choose_wrong_value(_fact(2, "Nile", ["The Nile"]), 0)
    # a candidate the question mentions is never chosen
    q = _fact(3, "Sydney", ["Oslo", "Cairo"], question="Which of Sydney, Oslo is not a capital?")
    assert {choose_wrong_value(q, s).wrong for s in range(20)} == {"Cairo"}


def test_corrupting_documents_are_deterministic_and_state_the_wrong_value():
    facts = [choose_wrong_value(_fact(i, v, c), 0) for i, (v, c) in
             enumerate([("Paris", ["Berlin", "Madrid"]), ("Nile", ["Amazon", "Danube"])])]
    a = corrupting_documents(facts, 4)
    assert a == corrupting_documents([choose_wrong_value(dataclasses.replace(f, wrong=None), 0) for f in facts], 4)
    assert len(a) == 2 * len(CORRUPTION_TEMPLATES)
    assert a[0].text == f"Question: Question number 0?\nAnswer: {facts[0].wrong}"
    assert all(facts[i // 4].wrong in d.text and facts[i // 4].value not in d.text for i, d in enumerate(a))
    assert [d.record_id for d in a[:2]] == ["restor:f0:t0", "restor:f0:t1"] and a[0].subject == "f0"
    with pytest.raises(ValueError, match="no wrong value"):
        corrupting_documents([_fact(9, "x", ["y"])], 1)


def test_tofu_subset_pool_values_and_same_kind_candidates():
    pool, info = load_fact_pool(RestorProfile(fact_source="tofu_subset"))
    assert info["source"] == "tofu_subset" and info["population"] == len(pool) > 100
    for f in pool[:50]:
        assert f.value in f.answer and f.kind in ("title", "year") and f.value not in f.candidates
        w = choose_wrong_value(f, 0)
        assert w.wrong in f.candidates
        assert w.wrong in corrupting_documents([w], 1)[0].text


@needs_tofu
def test_world_pool_shuffle_is_seeded_and_filler_is_deterministic():
    p0, info = load_fact_pool(RestorProfile(fact_source="world_knowledge", seed=0))
    p0b, _ = load_fact_pool(RestorProfile(fact_source="world_knowledge", seed=0))
    p1, _ = load_fact_pool(RestorProfile(fact_source="world_knowledge", seed=1))
    assert [f.fact_id for f in p0] == [f.fact_id for f in p0b] != [f.fact_id for f in p1]
    assert set(info["files"]) == {"world_facts", "real_authors"} and 200 < len(p0) <= 217
    f1, prov = filler_documents(TOFU, 10, seed=0)
    f2, _ = filler_documents(TOFU, 10, seed=0)
    assert f1 == f2 and prov["n"] == 10
    assert all(30 <= int(r.record_id[4:]) // 20 < 198 for r in f1)


def test_profile_validation():
    with pytest.raises(ValueError):
        RestorProfile(fact_source="wiki")
    with pytest.raises(ValueError):
        RestorProfile(templates=9)
    d = RestorProfile(preset="smollm2-135m-lora").to_dict()
    assert d["fact_source"] == "world_knowledge" and "no LLM judge" in d["judge"]
    assert RestorProfile().resolved_fact_source == "tofu_subset"


# ----------------------------------------------------------------------------- attachment

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 20


def _report():
    m = restor_metrics(CLEAN, CORRUPTED, UNLEARNED)
    return {"profile": RestorProfile(preset="test").to_dict(), "facts": [{}] * 6,
            "models": {"clean": m["clean"], "corrupted": m["corrupted"], "lost": m["lost"]},
            "methods": [{"method": "retrain", "status": "ok", "metrics": m["unlearned"]},
                        {"method": "ga", "status": "ok", "metrics": m["unlearned"]}]}


def test_attachment_block_carries_the_figure_and_the_method_row():
    block = restor_attachment(_report(), PNG, "ga")
    assert base64.b64decode(block["figure"]["data_base64"]) == PNG and block["figure"]["bytes"] == len(PNG)
    assert block["method_metrics"]["recovery"]["value"] == pytest.approx(50.0)
    assert block["retrain_metrics"]["status"] == "ok" and block["n_lost"] == 4
    assert "not measured on this request" in block["scope"] and "no LLM" not in block["scope"]
    assert "not by an LLM judge" in block["judge"]
    missing = restor_attachment(_report(), PNG, "npo")
    assert missing["method_metrics"] is None and "did not evaluate" in missing["note"]
    from evaluation.certificate_html import render_certificate_html
    page = render_certificate_html({"payload": {"evaluation_attachments": [block]}})
    assert f"data:image/png;base64,{block['figure']['data_base64']}" in page and "Evaluation attachments" in page
    bad = {**block, "figure": {**block["figure"], "data_base64": '"><script>'}}
    assert "<script>" not in render_certificate_html({"payload": {"evaluation_attachments": [bad]}})
    with pytest.raises(ValueError, match="not a PNG"):
        restor_attachment(_report(), b"GIF89a", "ga")
    with pytest.raises(ValueError, match="not a RESTOR report"):
        restor_attachment({"profile": {"name": "tofu"}}, PNG, "ga")


# ----------------------------------------------------------------------------- CLI / end to end

def test_cli_refuses_a_retrained_reference_and_unknown_fields(tmp_path, capsys):
    from evaluation.runner import main

    assert main(["--model", str(tmp_path), "--profile", "restor", "--retrained", str(tmp_path)]) == 2
    assert "trains its own retrain" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), "--profile", "restor", "--set", "bogus=1"]) == 2
    assert "unknown or computed RestorProfile field" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), "--profile", "restor", "--set", "methods=[\"nope\"]"]) == 2


@needs_tofu
def test_end_to_end_on_the_test_preset(tmp_path):
    """Clean "test" model memorises 8 world facts; the RESTOR run corrupts 5, runs retrain, ga and
    eco (skipped: no weight change) and writes the JSON + PNG; the per-fact judgements in the
    report reproduce its recovery rate."""
    from evaluation.restor_runner import format_restor_table, prepare_clean_model
    from evaluation.runner import run_evaluation
    from unlearning_engine.data import Example

    prof = RestorProfile(preset="test", fact_source="world_knowledge")
    pool = load_fact_pool(prof)[0][:8]
    clean = prepare_clean_model(tmp_path / "m", "test", records=[Example(question=f.question, answer=f.answer)
                                                                 for f in pool], epochs=150)
    fact_ids = {f.fact_id for f in pool}
    out = tmp_path / "r.json"
    # the CLI entry point, with the pool of those 8 facts (pool_limit 8 = the first 8 shuffled)
    rep = run_evaluation(clean, "restor", limit=5, out=out, overrides={
        "preset": "test", "fact_source": "world_knowledge", "pool_limit": 8, "templates": 2,
        "methods": ["retrain", "ga", "eco"], "max_new_tokens": 16, "collapse_check": False})
    on_disk = json.loads(out.read_text())
    assert on_disk["profile"]["n_facts"] == 5 and out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert {f["fact_id"] for f in rep["facts"]} <= fact_ids
    n = len(rep["facts"])
    assert rep["setup"]["corruption"]["corrupting_documents"] == 2 * n if n else True
    rows = {r["method"]: r for r in rep["methods"]}
    assert list(rows) == ["retrain", "ga", "eco"] and rows["eco"]["status"].startswith("skipped")
    if n:  # the clean model knew some facts: the judgements reproduce the recovery rate
        lost = rep["models"]["lost"]
        for m in ("retrain", "ga"):
            rec = rows[m]["metrics"]["recovery"]
            got = sum(rep["facts"][i]["unlearned"][m]["judgement"] == "correct" for i in lost)
            assert rec["n"] == len(lost)
            if lost:
                assert rec["value"] == pytest.approx(100 * got / len(lost))
            else:
                assert rec["status"] == "undefined"
        assert not math.isnan(rows["retrain"]["metrics"]["accuracy"]["value"])
    assert "normalised-string judge" in format_restor_table(rep)
