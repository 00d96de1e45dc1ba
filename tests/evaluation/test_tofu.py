import json
import math
from math import comb

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from evaluation.certificate import canonical_json
from evaluation.tofu import (
    AnswerScore,
    TofuProfile,
    answer_logprobs,
    evaluate_tofu,
    forget_quality,
    harmonic_mean,
    model_utility,
    truth_ratio,
)

from .bench_fixtures import write_tofu

FAST = TofuProfile(
    generation_max_new_tokens=12,
    verbmem_max_new_tokens=12,
    knowmem_max_new_tokens=8,
    bootstrap_resamples=50,
)


# ----------------------------------------------------------------- forget quality (KS)


def test_forget_quality_identical_arrays_is_one():
    a = [0.3, 0.5, 0.9, 1.2, 2.0, 0.7]
    m = forget_quality(a, list(a), n_bootstrap=0)
    assert m.status == "ok" and m.value == 1.0 and m.details["ks_statistic"] == 0.0
    assert m.n == {"unlearned": 6, "retrained": 6}


def test_forget_quality_separated_arrays_exact_p():
    u, r = [1, 2, 3, 4, 5], [10, 11, 12, 13, 14]
    m = forget_quality(u, r, n_bootstrap=0)
    expected = 2 / comb(10, 5)  # exact two-sided KS p-value with D = 1, n = m = 5
    assert m.value == pytest.approx(expected, abs=1e-9)
    assert m.value == pytest.approx(ks_2samp(u, r).pvalue, abs=1e-12)
    assert m.details["ks_statistic"] == 1.0
    # KS only sees the ordering: R and 1/R (the TOFU code's orientation) agree
    inv = forget_quality([1 / x for x in u], [1 / x for x in r], n_bootstrap=0)
    assert inv.value == pytest.approx(m.value, abs=1e-12)


def test_forget_quality_undefined_and_ci():
    m = forget_quality([1.0, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert m.status == "undefined" and "minimum size" in m.reason
    m = forget_quality([1, 2, 3, 4, math.nan], [1, 2, 3, 4, 5])
    assert m.status == "undefined" and "non-finite" in m.reason
    m = forget_quality([1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7], n_bootstrap=50, seed=1)
    lo, hi = m.ci95
    assert 0.0 <= lo <= hi <= 1.0


# ----------------------------------------------------------------- model utility


def test_harmonic_mean_values():
    assert harmonic_mean([0.5, 0.25, 1.0]) == pytest.approx(3 / 7, abs=1e-15)
    assert harmonic_mean([0.5, 0.25, 1.0]) == pytest.approx(0.4285714285714286)
    assert harmonic_mean([0.4, 0.0, 1.0]) == 0.0
    with pytest.raises(ValueError):
        harmonic_mean([])
    with pytest.raises(ValueError):
        harmonic_mean([0.5, -0.1])


def test_model_utility_is_harmonic_mean_of_nine():
    comps = {
        "retain": {"probability": [0.5, 0.5], "rouge_recall": [0.25, 0.25],
                   "truth_ratio": [1.0, 1.0]},
        "real_authors": {"probability": [0.4, 0.6], "rouge_recall": [0.5, 0.5],
                         "truth_ratio": [0.2, 0.2]},
        "world_facts": {"probability": [1.0], "rouge_recall": [0.5], "truth_ratio": [0.5]},
    }
    m = model_utility(comps, n_bootstrap=100, seed=0)
    nine = [0.5, 0.25, 1.0, 0.5, 0.5, 0.2, 1.0, 0.5, 0.5]
    assert m.value == pytest.approx(9 / sum(1 / x for x in nine), abs=1e-12)
    assert m.n == {"retain": 2, "real_authors": 2, "world_facts": 1}
    assert set(m.details["components"]) == {
        f"{s}_{p}" for s in ("retain", "real_authors", "world_facts")
        for p in ("probability", "rouge_recall", "truth_ratio")}
    assert m.ci95[0] <= m.value <= m.ci95[1]
    del comps["world_facts"]
    u = model_utility(comps)
    assert u.status == "undefined" and "world_facts" in u.reason


# ----------------------------------------------------------------- truth ratio


def _manual_answer_lp(model, tok, prompt, answer):
    p_ids = tok(prompt)["input_ids"]
    full = tok(prompt + answer)["input_ids"]
    a_ids = full[len(p_ids):] if full[: len(p_ids)] == p_ids else tok(
        answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + a_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    total = sum(float(logp[len(p_ids) - 1 + j, t]) for j, t in enumerate(a_ids))
    return total, len(a_ids)


def test_truth_ratio_matches_manual_calculation(tiny_llama, bos_tokenizer):
    prompt = "Question: What genre does he write?\nAnswer: "
    para = "He writes crime novels."
    perts = ["He writes poems.", "He writes about cooking and travel.", "She paints."]
    scores = answer_logprobs(tiny_llama, bos_tokenizer, [prompt] * 4, [para] + perts,
                             batch_size=3)
    norm = []
    for s, ans in zip(scores, [para] + perts, strict=True):
        lp, n = _manual_answer_lp(tiny_llama, bos_tokenizer, prompt, ans)
        assert s.n_tokens == n and s.logprob == pytest.approx(lp, abs=1e-4)
        norm.append(math.exp(lp / n))  # P(a|q)^(1/|a|)
    expected = np.mean(norm[1:]) / norm[0]
    assert truth_ratio(scores[0], scores[1:]) == pytest.approx(expected, rel=1e-4)
    geo = math.exp(np.mean([math.log(x) for x in norm[1:]])) / norm[0]
    assert truth_ratio(scores[0], scores[1:], mean="geometric") == pytest.approx(geo, rel=1e-4)
    one = answer_logprobs(tiny_llama, bos_tokenizer, [prompt], [perts[1]], batch_size=1)[0]
    assert one.logprob == pytest.approx(scores[2].logprob, abs=1e-5)


def test_truth_ratio_hand_values_and_errors():
    # p̄(para) = 0.5; perturbed p̄ = 0.25 and 0.75 -> arithmetic mean 0.5 -> R = 1
    para = AnswerScore(math.log(0.5) * 2, 2)
    perts = [AnswerScore(math.log(0.25) * 3, 3), AnswerScore(math.log(0.75), 1)]
    assert truth_ratio(para, perts) == pytest.approx(1.0)
    assert truth_ratio(para, perts, mean="geometric") == pytest.approx(
        math.sqrt(0.25 * 0.75) / 0.5)
    with pytest.raises(ValueError):
        truth_ratio(para, [])
    with pytest.raises(ValueError):
        truth_ratio(AnswerScore(0.0, 0), perts)


# ----------------------------------------------------------------- profile


def test_tofu_profile_report(tiny_llama, bos_tokenizer, tmp_path):
    d = write_tofu(tmp_path / "tofu", n=6)
    rep = evaluate_tofu(tiny_llama, bos_tokenizer, d, profile=FAST)
    assert set(rep) == {"profile", "metrics", "privleak", "tofu", "degenerate", "timing"}
    m = rep["metrics"]
    expected = {"verbmem_forget", "knowmem_forget", "knowmem_retain", "mink_auc", "loss_auc",
                "zlib_auc", "ppl_lower_auc", "minkpp_auc", "privleak", "forget_quality", "model_utility"}
    for s in ("forget", "retain", "real_authors", "world_facts"):
        expected |= {f"truth_ratio_{s}", f"probability_{s}"}
    expected |= {f"rouge_recall_{s}" for s in ("retain", "real_authors", "world_facts")}
    assert set(m) == expected
    assert m["forget_quality"]["status"] == "undefined" and "--retrained" in m[
        "forget_quality"]["reason"]
    for k, v in m.items():
        if k != "forget_quality":
            assert v["status"] == "ok", (k, v)
    assert m["truth_ratio_forget"]["n"] == 6 and m["mink_auc"]["n"] == {"forget": 6,
                                                                        "holdout": 6}
    assert m["model_utility"]["n"] == {"retain": 6, "real_authors": 6, "world_facts": 6}
    comps = rep["tofu"]["utility_components"]
    assert m["model_utility"]["value"] == pytest.approx(harmonic_mean(list(comps.values())))
    assert 0 <= m["probability_real_authors"]["value"] <= 1
    assert len(rep["tofu"]["forget_truth_ratios"]) == 6
    assert rep["privleak"]["reference_type"] == "ideal" and rep["privleak"]["flagged"]
    assert rep["profile"]["name"] == "tofu" and rep["profile"]["qa"]["name"] == "tofu-qa-v1"
    assert rep["profile"]["revision"] == 2 and rep["profile"]["truth_ratio_mean"] == "geometric"
    # headline forget truth ratio = the code's mean min(R, 1/R); mean R kept as a detail
    trs = rep["tofu"]["forget_truth_ratios"]
    tr = m["truth_ratio_forget"]
    assert tr["value"] == pytest.approx(np.mean([min(r, 1 / r) for r in trs]))
    assert tr["details"]["mean_r"] == pytest.approx(np.mean(trs))
    # ds_size: the first rows of each split, not a seeded sample
    assert rep["profile"]["splits"]["retain"]["indices"] == list(range(6))
    assert rep["profile"]["splits"]["holdout"]["file"] == "holdout01.json"
    canonical_json(rep)
    json.dumps(rep)
    # the same model as its own retrained reference: identical distributions -> FQ = 1
    again = evaluate_tofu(
        tiny_llama, bos_tokenizer, d, profile=FAST,
        retrained_truth_ratios=rep["tofu"]["forget_truth_ratios"],
        reference_auc=m["mink_auc"]["value"], reference_type="retrain")
    assert again["metrics"]["forget_quality"]["value"] == pytest.approx(1.0)
    assert again["metrics"]["privleak"]["value"] == pytest.approx(0.0)
    assert again["privleak"]["reference_type"] == "retrain" and not again["privleak"]["flagged"]


def test_tofu_limit_and_tiny_split(tiny_llama, bos_tokenizer, tmp_path):
    d = write_tofu(tmp_path / "tofu", n=6)
    rep = evaluate_tofu(tiny_llama, bos_tokenizer, d,
                        profile=TofuProfile(**{**FAST.to_dict(), "limit": 3,
                                               "generation_stop_strings": ("\n\n",)}))
    assert rep["profile"]["limit"] == 3
    assert rep["profile"]["splits"]["retain"]["evaluated"] == 3
    assert rep["profile"]["splits"]["retain"]["population"] == 6
    # 3 < mia_min_size 5: undefined with a reason, PrivLeak too, no crash
    assert rep["metrics"]["mink_auc"]["status"] == "undefined"
    assert rep["metrics"]["privleak"]["status"] == "undefined"
    fq = rep["metrics"]["forget_quality"]
    assert fq["status"] == "undefined" and fq["n"] == {"unlearned": 3, "retrained": 0}


# ----------------------------------------------------------------- named profiles


def test_answer_logprobs_scores_eos_and_cuts_at_max_length(tiny_llama, bos_tokenizer):
    """``score_eos``: |a| + 1 and log P(a) + log P(EOS | q, a) (the TOFU code's labels)."""
    prompt, ans = "Question: Who wrote it?\n", "Answer: The author."
    plain = answer_logprobs(tiny_llama, bos_tokenizer, [prompt], [ans])[0]
    eos = answer_logprobs(tiny_llama, bos_tokenizer, [prompt], [ans], score_eos=True)[0]
    assert eos.n_tokens == plain.n_tokens + 1
    p_ids = bos_tokenizer(prompt)["input_ids"]
    ids = p_ids + bos_tokenizer(prompt + ans)["input_ids"][len(p_ids):]
    with torch.no_grad():
        logp = torch.log_softmax(tiny_llama(torch.tensor([ids])).logits[0, -1].float(), -1)
    assert eos.logprob == pytest.approx(plain.logprob + float(logp[bos_tokenizer.eos_token_id]),
                                        abs=1e-4)
    cut = answer_logprobs(tiny_llama, bos_tokenizer, [prompt], [ans], score_eos=True,
                          max_length=len(p_ids) + 2)[0]
    assert cut.n_tokens == 2 and cut.truncated


def test_named_profiles_and_prompt_families():
    from evaluation.tofu import TOFU_PROMPT_FORMATS, tofu_profile

    t = tofu_profile("tofu")
    assert (t.name, t.limit, t.row_selection, t.truth_ratio_mean, t.score_eos) == (
        "tofu", 300, "first", "geometric", True)
    assert (t.rouge_tokenizer, t.rouge_use_stemmer, t.generation_stop_strings) == (
        "rouge_score-default", True, ())
    assert (t.generation_max_length, t.generation_max_new_tokens) == (200, None)
    assert t.question_template == "Question: {question}\n" and t.answer_prefix == "Answer: "
    p = tofu_profile("tofu_paper")
    assert (p.name, p.limit, p.row_selection, p.truth_ratio_mean, p.score_eos) == (
        "tofu_paper", None, "seeded", "arithmetic", False)
    assert (p.choice_probability, p.question_template, p.answer_prefix) == (
        "unnormalised", "Question: {question}\nAnswer: ", "")
    llama = tofu_profile("tofu", prompt_family="llama2-7b")
    assert llama.question_template == "[INST] {question} [/INST]" and llama.answer_prefix == ""
    assert TOFU_PROMPT_FORMATS["phi"]["answer_prefix"] == "Answer: "
    with pytest.raises(ValueError):
        tofu_profile("tofu-v9")
    with pytest.raises(ValueError):
        tofu_profile("tofu", prompt_family="gpt-9")


def test_tofu_paper_profile_report_and_verdict_name(tiny_llama, bos_tokenizer, tmp_path):
    from evaluation.tofu import tofu_profile
    from evaluation.verdicts import _not_verified_base

    d = write_tofu(tmp_path / "tofu", n=6)
    fast = {k: getattr(FAST, k) for k in ("verbmem_max_new_tokens", "knowmem_max_new_tokens",
                                          "bootstrap_resamples")}
    paper = evaluate_tofu(tiny_llama, bos_tokenizer, d,
                          profile=tofu_profile("tofu_paper", generation_max_new_tokens=12,
                                               **fast))
    code = evaluate_tofu(tiny_llama, bos_tokenizer, d, profile=tofu_profile(
        "tofu", generation_max_length=40, **fast))
    assert paper["profile"]["name"] == "tofu_paper" and code["profile"]["name"] == "tofu"
    for rep in (paper, code):
        assert rep["metrics"]["model_utility"]["status"] == "ok"
        assert not any("truth ratio" in s for s in _not_verified_base(rep))
    # different scored tokens (EOS, "Answer: " prefix) and means: different truth ratios
    assert paper["tofu"]["forget_truth_ratios"] != code["tofu"]["forget_truth_ratios"]
    qa_only = {"profile": {"name": "tofu-qa-v1"}}
    assert any("truth ratio" in s for s in _not_verified_base(qa_only))


def test_generation_budget_is_max_length_minus_batch_width(tiny_llama, bos_tokenizer):
    """``generation_max_length`` L: a batch of prompts of at most w tokens gets L − w new
    tokens (``generate(max_length=L)`` on a left-padded batch, as in the TOFU code)."""
    from evaluation.profiles.tofu import _generate
    from evaluation.tofu import tofu_profile

    prompts = ["Question: Who?\n", "Question: Where does the painter of rivers live?\n"]
    widths = [len(bos_tokenizer(p)["input_ids"]) for p in prompts]
    prof = tofu_profile("tofu", generation_max_length=max(widths) + 5,
                        generation_batch_size=2)
    gens = _generate(tiny_llama, bos_tokenizer, prompts, prof)
    assert all(len(g.token_ids) <= 5 for g in gens)
    assert any(g.stopped_by == "length" and len(g.token_ids) == 5 for g in gens)
    short = tofu_profile("tofu", generation_max_length=min(widths), generation_batch_size=1)
    gens = _generate(tiny_llama, bos_tokenizer, prompts, short)
    assert [g.text for g in gens] == ["", ""]
