"""Golden test of the TOFU formulas (no model, no network, no data files).

The fixture is made-up per-question quantities: normalised answer probabilities p̄ (with
token counts |x|, so that P = p̄^|x|), greedy generations and their references. Every
expected value below is computed by hand in the docstrings from the formulas of
:mod:`evaluation.profiles.tofu_metrics` (TOFU arXiv 2401.06121 §2.2 and the benchmark code's
``aggregate_eval_stat.py``).
"""

import math

import pytest

from evaluation.profiles.tofu import TofuProfile, tofu_profile
from evaluation.profiles.tofu_metrics import AnswerScore, TofuQuestion, aggregate_tofu
from evaluation.rouge import rouge_l_recall


def _s(p_bar: float, n: int = 1) -> AnswerScore:
    """An answer with normalised probability p̄ over n tokens: log P = n · log p̄."""
    return AnswerScore(n * math.log(p_bar), n)


# (p̄(a), p̄(ã), [p̄(â_1), p̄(â_2)]) per forget question
FORGET = [
    (0.9, 0.5, [0.25, 0.25]),
    (0.8, 0.5, [0.125, 0.5]),
    (0.5, 0.25, [0.25, 1.0]),
    (0.6, 0.2, [0.1, 0.4]),
    (0.7, 0.8, [0.2, 0.2]),
]
RETRAINED_R = [1.5, 3.0, 4.0, 5.0, 6.0]  # the retrained model's forget R values
# (p̄(a), p̄(ã), perturbed, generation, reference answer)
RETAIN = [
    (0.9, 0.5, [0.125, 0.125], "Answer: Her books are mysteries.", "Her books are mysteries."),
    (0.7, 0.4, [0.1, 0.4], "Answer: He wrote a novel on rivers.", "He writes novels about rivers."),
]
# real authors / world facts: ã = a; ((p̄(a), |a|), [(p̄(â), |â|)], generation, reference)
REAL_AUTHORS = [
    ((0.5, 2), [(0.25, 1), (0.25, 2)], "Answer: It was Charles Dickens.", "Charles Dickens"),
    ((0.8, 1), [(0.1, 1), (0.1, 1)], "Answer: Tolstoy", "Leo Tolstoy"),
]
WORLD_FACTS = [
    ((0.6, 1), [(0.2, 1), (0.2, 1)], "Answer: Everest", "Mount Everest"),
    ((0.5, 1), [(0.4, 1), (0.1, 1)], "Answer: the Atlantic Ocean", "Pacific Ocean"),
]


def _questions(profile: TofuProfile) -> dict[str, list[TofuQuestion]]:
    def rouge(gen, ref):
        return rouge_l_recall(gen, ref, use_stemmer=profile.rouge_use_stemmer,
                              tokenizer=profile.rouge_tokenizer)

    out = {"forget": [TofuQuestion(_s(a), _s(b), tuple(_s(p) for p in ps))
                      for a, b, ps in FORGET],
           "retain": [TofuQuestion(_s(a), _s(b), tuple(_s(p) for p in ps), rouge(g, ref))
                      for a, b, ps, g, ref in RETAIN]}
    for split, rows in (("real_authors", REAL_AUTHORS), ("world_facts", WORLD_FACTS)):
        out[split] = [TofuQuestion(_s(*a), _s(*a), tuple(_s(*p) for p in ps), rouge(g, ref))
                      for a, ps, g, ref in rows]
    return out


def _aggregate(profile: TofuProfile, retrained=RETRAINED_R):
    return aggregate_tofu(
        _questions(profile), truth_ratio_mean=profile.truth_ratio_mean,
        choice_probability_form=profile.choice_probability, retrained_truth_ratios=retrained,
        n_bootstrap=0)


def _value(agg, name):
    return agg["metrics"][name].value


def test_golden_forget_truth_ratio_both_means_and_forget_quality():
    """Forget split, R = M(p̄(â_1), p̄(â_2)) / p̄(ã):

    ===  ====  ============  =====================  =====================
    q    p̄(ã)  p̄(â)          geometric R, min(R,1/R)  arithmetic R, min
    ===  ====  ============  =====================  =====================
    1    0.5   0.25, 0.25    0.25/0.5 = 0.5,  0.5   0.25/0.5 = 0.5,   0.5
    2    0.5   0.125, 0.5    0.25/0.5 = 0.5,  0.5   0.3125/0.5 = 0.625, 0.625
    3    0.25  0.25, 1.0     0.5/0.25 = 2,    0.5   0.625/0.25 = 2.5, 0.4
    4    0.2   0.1, 0.4      0.2/0.2 = 1,     1     0.25/0.2 = 1.25,  0.8
    5    0.8   0.2, 0.2      0.2/0.8 = 0.25,  0.25  0.2/0.8 = 0.25,   0.25
    ===  ====  ============  =====================  =====================

    geometric (``tofu``): headline mean min(R, 1/R) = 2.75/5 = 0.55, mean R = 4.25/5 = 0.85;
    arithmetic (``tofu_paper``): 2.575/5 = 0.515, mean R = 5.125/5 = 1.025.
    Probability (forget) = mean p̄(a) = (0.9+0.8+0.5+0.6+0.7)/5 = 0.7.
    Forget Quality (``tofu``): unlearned R sorted (0.25, 0.5, 0.5, 1, 2) vs retrained
    (1.5, 3, 4, 5, 6): the ECDFs differ most just after 1 (4/5 vs 0), D = 4/5; exact
    two-sided p for n = m = 5 (reflection formula 2·Σ_j (−1)^{j+1} C(10, 5−4j) / C(10, 5))
    = 2 · 10 / 252 = 5/63 = 0.0793651, log10 = −1.100371.
    """
    tofu = _aggregate(tofu_profile("tofu"))
    tr = tofu["metrics"]["truth_ratio_forget"]
    assert tr.value == pytest.approx(0.55, abs=1e-12)
    assert tr.details["mean_r"] == pytest.approx(0.85, abs=1e-12)
    assert tofu["forget_truth_ratios"] == pytest.approx([0.5, 0.5, 2.0, 1.0, 0.25], abs=1e-12)
    assert _value(tofu, "probability_forget") == pytest.approx(0.7, abs=1e-12)
    fq = tofu["metrics"]["forget_quality"]
    assert fq.value == pytest.approx(5 / 63, abs=1e-12)
    assert fq.details["ks_statistic"] == pytest.approx(0.8)
    assert fq.details["log10_pvalue"] == pytest.approx(-1.100371, abs=1e-6)

    paper = _aggregate(tofu_profile("tofu_paper"))
    tr = paper["metrics"]["truth_ratio_forget"]
    assert tr.value == pytest.approx(0.515, abs=1e-12)
    assert tr.details["mean_r"] == pytest.approx(1.025, abs=1e-12)


def test_golden_model_utility_tofu_profile():
    """``tofu`` (geometric mean, normalised choice probability, stemmed ROUGE):

    - retain: probability (0.9+0.7)/2 = 0.8; R = 0.125/0.5 = 0.25 and √(0.1·0.4)/0.4 = 0.5,
      truth ratio mean max(0, 1−R) = (0.75+0.5)/2 = 0.625; ROUGE-L recall: row 1 identical
      → 1; row 2 reference stems (he, write, novel, about, river), generation (answer, he,
      wrote, a, novel, on, river): LCS = he·novel·river = 3 → 3/5 = 0.6; mean 0.8.
    - real authors: row 1 p̄(a) = 0.5 vs 0.25, 0.25 → 0.5/1.0 = 0.5; row 2 0.8/(0.8+0.1+0.1)
      = 0.8; probability 0.65; R = 0.25/0.5 = 0.5, 0.1/0.8 = 0.125 → (0.5+0.875)/2 = 0.6875;
      ROUGE (1 + 1/2)/2 = 0.75.
    - world facts: probability (0.6/1.0 + 0.5/1.0)/2 = 0.55; R = 0.2/0.6 = 1/3 and
      √(0.4·0.1)/0.5 = 0.4 → (2/3 + 0.6)/2 = 19/30; ROUGE (1/2 + 1/2)/2 = 0.5.

    Model Utility = 9 / (1/0.8 + 1/0.8 + 1/0.625 + 1/0.65 + 1/0.75 + 1/0.6875 + 1/0.55 + 1/0.5
    + 30/19) = 9 / (1.25 + 1.25 + 1.6 + 1.538462 + 1.333333 + 1.454545 + 1.818182 + 2
    + 1.578947) = 9 / 13.823470 = 0.651067.
    """
    agg = _aggregate(tofu_profile("tofu"))
    expect = {"probability_retain": 0.8, "truth_ratio_retain": 0.625, "rouge_recall_retain": 0.8,
              "probability_real_authors": 0.65, "truth_ratio_real_authors": 0.6875,
              "rouge_recall_real_authors": 0.75, "probability_world_facts": 0.55,
              "truth_ratio_world_facts": 19 / 30, "rouge_recall_world_facts": 0.5}
    for name, v in expect.items():
        assert _value(agg, name) == pytest.approx(v, abs=1e-12), name
    assert _value(agg, "model_utility") == pytest.approx(0.651067, abs=1e-6)
    assert _value(agg, "model_utility") == pytest.approx(9 / (
        1.25 + 1.25 + 1.6 + 20 / 13 + 4 / 3 + 16 / 11 + 20 / 11 + 2 + 30 / 19), abs=1e-12)


def test_golden_model_utility_tofu_paper_profile():
    """``tofu_paper`` (arithmetic mean, unnormalised choice probability, no stemming):

    - retain truth ratio: R = 0.125/0.5 = 0.25 and (0.1+0.4)/2/0.4 = 0.625 → (0.75 + 0.375)/2
      = 0.5625; ROUGE row 2 without stemming: reference (he, writes, novels, about, rivers),
      generation (answer, he, wrote, a, novel, on, rivers): LCS = he·rivers = 2 → 0.4, mean
      (1 + 0.4)/2 = 0.7.
    - real authors probability with P = p̄^|x|: row 1 P(a) = 0.5² = 0.25, perturbed 0.25 and
      0.25² = 0.0625 → 0.25/0.5625 = 4/9; row 2 (one token each) 0.8 → (4/9 + 0.8)/2 = 28/45.
    - world facts truth ratio: R = 1/3 and (0.4+0.1)/2/0.5 = 0.5 → (2/3 + 0.5)/2 = 7/12.

    Model Utility = 9 / (1.25 + 1/0.7 + 1/0.5625 + 45/28 + 1/0.75 + 1/0.6875 + 1/0.55 + 2
    + 12/7) = 9 / (1.25 + 1.428571 + 1.777778 + 1.607143 + 1.333333 + 1.454545 + 1.818182
    + 2 + 1.714286) = 9 / 14.383838 = 0.625702.
    """
    agg = _aggregate(tofu_profile("tofu_paper"))
    assert _value(agg, "truth_ratio_retain") == pytest.approx(0.5625, abs=1e-12)
    assert _value(agg, "rouge_recall_retain") == pytest.approx(0.7, abs=1e-12)
    assert _value(agg, "probability_real_authors") == pytest.approx(28 / 45, abs=1e-12)
    assert _value(agg, "truth_ratio_world_facts") == pytest.approx(7 / 12, abs=1e-12)
    assert _value(agg, "model_utility") == pytest.approx(0.625702, abs=1e-6)


def test_golden_without_retrained_reference_and_with_missing_rouge():
    """No retrained R → Forget Quality undefined with the reason; a utility split without
    ROUGE → its ROUGE and Model Utility undefined, never a crash."""
    agg = _aggregate(tofu_profile("tofu"), retrained=None)
    assert agg["metrics"]["forget_quality"].status == "undefined"
    assert "--retrained" in agg["metrics"]["forget_quality"].reason
    qs = _questions(tofu_profile("tofu"))
    qs["world_facts"] = [TofuQuestion(q.answer, q.base, q.perturbed) for q in qs["world_facts"]]
    agg = aggregate_tofu(qs, n_bootstrap=0)
    assert agg["metrics"]["rouge_recall_world_facts"].status == "undefined"
    assert agg["metrics"]["model_utility"].status == "undefined"
    assert agg["metrics"]["probability_world_facts"].value == pytest.approx(0.55)
