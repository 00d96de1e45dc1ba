import json
import math

import pytest

from evaluation.certificate import canonical_json
from evaluation.mia import privleak_metric
from evaluation.muse import (
    MuseNewsProfile,
    evaluate_muse_news,
    exact_memorised,
    first_tokens_text,
    knowmem_prompt,
    verbmem_reference,
)
from evaluation.stats import MetricValue
from evaluation.verdicts import compute_verdicts

from .bench_fixtures import write_muse

FAST = MuseNewsProfile(
    verbmem_max_new_tokens=16,
    knowmem_max_new_tokens=8,
    exact_memorisation_tokens=4,
    bootstrap_resamples=50,
)
METRICS = {
    "verbmem_forget", "knowmem_forget", "knowmem_retain", "exact_memorisation",
    "mink_auc", "loss_auc", "zlib_auc", "ppl_lower_auc", "minkpp_auc", "privleak",
}


def test_knowmem_prompt_exact_format():
    shots = [("Who won?", "Ana"), ("Where?", "In Lisbon")]
    assert knowmem_prompt(shots, "When?") == (
        "Question: Who won?\nAnswer: Ana\n\n"
        "Question: Where?\nAnswer: In Lisbon\n\n"
        "Question: When?\nAnswer: "
    )
    assert knowmem_prompt([], "Q") == "Question: Q\nAnswer: "
    ten = [(f"q{i}", f"a{i}") for i in range(10)]
    p = knowmem_prompt(ten, "last")
    assert p.count("Question: ") == 11 and p.endswith("\n\nQuestion: last\nAnswer: ")
    assert p.startswith("Question: q0\nAnswer: a0\n\nQuestion: q1\n")


def test_exact_memorised_definition(bos_tokenizer):
    assert exact_memorised(" the book was", "the book") is True
    assert exact_memorised("the bo\nok was written", "the book") is True  # whitespace ignored
    assert exact_memorised("a book", "the book") is False
    assert exact_memorised("the", "the book") is False  # continuation too short
    assert exact_memorised("anything", " \n") is None
    text = "The book was written by Jaime Vasquez in 1990."
    prefix, k = first_tokens_text(bos_tokenizer, text, 3)
    ids = bos_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert k == 3 and text.startswith(prefix)
    assert bos_tokenizer(prefix, add_special_tokens=False)["input_ids"] == ids[:3]
    assert first_tokens_text(bos_tokenizer, text, 10_000) == (text, len(ids))


def test_privleak_metric_reference_types():
    auc = MetricValue(value=0.3, ci95=(0.2, 0.4), n={"forget": 10, "holdout": 10})
    m, block = privleak_metric(auc)
    assert m.value == pytest.approx(-40.0) and block["reference_type"] == "ideal"
    assert block["flagged"] and m.ci95 == pytest.approx((-60.0, -20.0))
    m, block = privleak_metric(auc, 0.3, "retrain")
    assert m.value == 0.0 and not block["flagged"]
    m, block = privleak_metric(auc, 0.6)
    assert block["reference_type"] == "supplied" and m.value == pytest.approx(-50.0)
    und, _ = privleak_metric(MetricValue.undefined("empty holdout set"))
    assert und.status == "undefined" and "empty holdout" in und.reason


def test_muse_profile_report_layout(tiny_llama, bos_tokenizer, tmp_path):
    d = write_muse(tmp_path / "muse", n=6, long_prompt=True)
    rep = evaluate_muse_news(tiny_llama, bos_tokenizer, d, profile=FAST)
    assert set(rep) == {"profile", "metrics", "privleak", "degenerate", "truncation", "timing"}
    assert set(rep["metrics"]) == METRICS
    for name, m in rep["metrics"].items():
        assert set(m) == {"value", "ci95", "n", "status", "reason", "details"}
        assert m["status"] == "ok", (name, m)
        assert m["ci95"][0] <= m["value"] + 1e-9 <= m["ci95"][1] + 2e-9
    for name in ("verbmem_forget", "knowmem_forget", "knowmem_retain", "exact_memorisation"):
        assert rep["metrics"][name]["n"] == 6
    assert rep["metrics"]["knowmem_forget"]["details"]["shots"] == 10
    for name in ("mink_auc", "loss_auc", "zlib_auc", "ppl_lower_auc", "minkpp_auc", "privleak"):
        assert rep["metrics"][name]["n"] == {"forget": 6, "holdout": 6}
    assert 0 <= rep["metrics"]["exact_memorisation"]["value"] <= 1
    pl = rep["privleak"]
    assert pl["reference"] == 0.5 and pl["reference_type"] == "ideal" and pl["flagged"]
    assert rep["metrics"]["privleak"]["value"] == pytest.approx(
        (rep["metrics"]["mink_auc"]["value"] - 0.5) / 0.5 * 100)
    p = rep["profile"]
    assert p["name"] == "muse-news-v1" and p["knowmem_shots"] == 10 and p["mink_k"] == 0.4
    assert p["rouge_tokenizer"] == "rouge_score-default"  # the benchmark's tokenizer
    assert p["rouge"]["tokenizer_name"] == "rouge_score-default"
    assert p["limit"] is None and p["context_length"] == 256
    assert set(p["splits"]) == {"verbmem_forget", "knowmem_forget", "knowmem_forget_icl",
                                "knowmem_retain", "knowmem_retain_icl", "privleak_forget",
                                "privleak_holdout"}
    assert p["splits"]["verbmem_forget"]["evaluated"] == 6
    assert len(p["splits"]["verbmem_forget"]["sha256"]) == 64
    # the long verbmem prompt (> 256 - 16 tokens) was truncated from the left, and recorded
    t = rep["truncation"]["verbmem_prompts"]
    assert t["n"] == 6 and t["truncated"] == 1 and t["max_prompt_tokens"] == 240
    assert set(rep["truncation"]) == {"verbmem_prompts", "knowmem_forget_prompts",
                                      "knowmem_retain_prompts", "privleak_texts"}
    blob = json.dumps(rep)
    data = json.loads((d / "verbmem/forget.json").read_text())
    assert data[1]["gt"] not in blob and data[1]["prompt"] not in blob  # no data text kept
    canonical_json(rep)
    # the report works with the existing verdicts
    v = compute_verdicts(rep, rep, None, reference_auc=None)
    assert {c["name"] for c in v["checks"]} >= {"verbmem_forget", "privleak", "knowmem_retain"}


def test_muse_limit_and_undefined(tiny_llama, bos_tokenizer, tmp_path):
    d = write_muse(tmp_path / "muse", n=8)
    prof = MuseNewsProfile(**{**FAST.to_dict(), "limit": 3, "seed": 7})
    rep = evaluate_muse_news(tiny_llama, bos_tokenizer, d, profile=prof)
    s = rep["profile"]["splits"]
    assert rep["profile"]["limit"] == 3 and rep["profile"]["seed"] == 7
    assert s["verbmem_forget"]["evaluated"] == 3 and s["verbmem_forget"]["population"] == 8
    assert s["knowmem_forget_icl"]["evaluated"] == 10  # shots are never subsampled
    assert rep["metrics"]["verbmem_forget"]["n"] == 3
    assert rep["metrics"]["mink_auc"]["status"] == "undefined"  # 3 < minimum size 5
    assert rep["metrics"]["privleak"]["status"] == "undefined"
    again = evaluate_muse_news(tiny_llama, bos_tokenizer, d, profile=prof)
    assert again["profile"]["splits"] == s and again["metrics"] == rep["metrics"]
    # empty splits: undefined with reasons, never a crash
    (d / "verbmem/forget.json").write_text("[]")
    (d / "privleak/holdout.json").write_text("[]")
    rep = evaluate_muse_news(tiny_llama, bos_tokenizer, d, profile=FAST)
    m = rep["metrics"]
    assert m["verbmem_forget"]["status"] == "undefined" and "empty" in m["verbmem_forget"]["reason"]
    assert m["exact_memorisation"]["status"] == "undefined"
    assert m["mink_auc"]["status"] == "undefined" and "empty holdout" in m["mink_auc"]["reason"]
    assert m["privleak"]["status"] == "undefined" and not math.isnan(0.0)
    assert m["knowmem_forget"]["status"] == "ok"


def test_verbmem_reference_keeps_bos_plus_n_minus_1_tokens(bos_tokenizer, plain_tokenizer):
    """Issue 22 item 6: MUSE tokenizes the gt with special tokens and cuts to n ids, so a
    BOS-adding tokenizer (Llama-2; here the trained ``bos_tokenizer``) keeps BOS + n − 1 real
    tokens, one without BOS the first n."""
    gt = "The book was written by Jaime Vasquez in 1990 and sold well."
    assert bos_tokenizer(gt)["input_ids"][0] == bos_tokenizer.bos_token_id
    real = bos_tokenizer(gt, add_special_tokens=False)["input_ids"]
    assert len(real) > 6
    text, k = verbmem_reference(bos_tokenizer, gt, 6)
    assert k == 5 and text == first_tokens_text(bos_tokenizer, gt, 5)[0]
    assert bos_tokenizer(text, add_special_tokens=False)["input_ids"] == real[:5]
    text, k = verbmem_reference(plain_tokenizer, gt, 6)
    assert k == 6 and text == first_tokens_text(plain_tokenizer, gt, 6)[0]
    # a gt shorter than n: every real token
    assert verbmem_reference(bos_tokenizer, gt, 10_000) == (gt, len(real))


def test_muse_unicode_rouge_option_is_recorded(tiny_llama, bos_tokenizer, tmp_path):
    from evaluation.runner import make_profile

    d = write_muse(tmp_path / "muse", n=5)
    prof = make_profile("muse_news", bootstrap_resamples=20,
                        overrides={**{k: getattr(FAST, k) for k in (
                            "verbmem_max_new_tokens", "knowmem_max_new_tokens",
                            "exact_memorisation_tokens")}, "rouge_tokenizer": "unicode-v1"})
    rep = evaluate_muse_news(tiny_llama, bos_tokenizer, d, profile=prof)
    assert rep["profile"]["rouge_tokenizer"] == "unicode-v1"
    assert rep["profile"]["rouge"]["tokenizer_name"] == "unicode-v1"
    assert rep["profile"]["rouge"]["tokenizer"].startswith("unicode-v1: NFC")
    with pytest.raises(ValueError, match="computed"):
        make_profile("muse_news", overrides={"rouge": {}})
    with pytest.raises(ValueError, match="rouge tokenizer"):
        evaluate_muse_news(tiny_llama, bos_tokenizer, d,
                           profile=MuseNewsProfile(rouge_tokenizer="nltk"))


def test_verdict_limitations_follow_the_profile():
    base = {"metrics": {}, "degenerate": {}}
    qa = compute_verdicts({**base, "profile": {"name": "tofu-qa-v1"}}, base, None,
                          reference_auc=None)["not_verified"]
    muse = compute_verdicts({**base, "profile": {"name": "muse-news-v1"}}, base, None,
                            reference_auc=None)["not_verified"]
    tofu = compute_verdicts({**base, "profile": {"name": "tofu-v1"}}, base, None,
                            reference_auc=None)["not_verified"]
    assert any("zero-shot" in s for s in qa) and not any("zero-shot" in s for s in muse)
    assert any("10-shot" in s for s in muse)
    assert any("Forget Quality" in s for s in muse) and not any("Forget Quality" in s for s in tofu)
