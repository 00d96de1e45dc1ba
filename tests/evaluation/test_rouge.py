import pytest
from rouge_score import rouge_scorer

from evaluation.rouge import UnicodeTokenizer, rouge_l_f1, rouge_l_recall, rouge_settings


def test_hand_checked_pair_one_substitution():
    # pred tokens: the cat sat on the mat (6); ref tokens: the cat is on the mat (6)
    # LCS = "the cat on the mat" = 5 -> P = 5/6, R = 5/6, F1 = 5/6
    assert rouge_l_f1("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)


def test_hand_checked_pair_reordered():
    # pred: police killed the gunman (4); ref: the gunman was killed by police (6)
    # LCS = "the gunman" = 2 ("killed" and "police" cannot be added in order)
    # P = 2/4, R = 2/6, F1 = 2*(1/2)*(1/3)/(1/2+1/3) = 0.4
    assert rouge_l_f1(
        "police killed the gunman", "the gunman was killed by police"
    ) == pytest.approx(0.4)


def test_case_and_punctuation_ignored():
    assert rouge_l_f1("Hello, World!", "hello world") == pytest.approx(1.0)


def test_empty_prediction_scores_zero():
    assert rouge_l_f1("", "the answer is 42") == 0.0
    assert rouge_l_f1("   ", "the answer is 42") == 0.0
    assert rouge_l_f1("", "") == 0.0


def test_identical_devanagari_scores_one():
    text = "मेरा नाम राम है और मैं दिल्ली में रहता हूँ"
    assert rouge_l_f1(text, text) == 1.0
    # the default rouge_score tokenizer drops non-ASCII: this is why we replace it
    assert rouge_scorer.RougeScorer(["rougeL"]).score(text, text)["rougeL"].fmeasure == 0.0


def test_devanagari_words_keep_combining_marks():
    # vowel signs / virama (category M*) stay inside the word
    assert UnicodeTokenizer().tokenize("मेरा नाम, श्याम!") == ["मेरा", "नाम", "श्याम"]
    # 4 tokens each, LCS = मेरा नाम है = 3 -> F1 = 3/4
    assert rouge_l_f1("मेरा नाम श्याम है", "मेरा नाम राम है") == pytest.approx(0.75)


def test_type_error_and_settings():
    with pytest.raises(TypeError):
        rouge_l_f1(None, "x")  # type: ignore[arg-type]
    s = rouge_settings()
    assert (
        s["use_stemmer"] is False
        and s["implementation"] == "rouge_score"
        and s["metric"] == "rougeL"
    )


def test_recall_default_tokenizer_with_stemmer_as_tofu_code():
    """Reference (he, writes, novels, about, rivers), prediction (he, wrote, a, novel, on,
    rivers): unstemmed LCS = he·rivers → 2/5; Porter-stemmed (write, novel, river) LCS =
    he·novel·river → 3/5 (the TOFU code: default tokenizer, ``use_stemmer=True``)."""
    ref, pred = "He writes novels about rivers.", "He wrote a novel on rivers."
    assert rouge_l_recall(pred, ref) == pytest.approx(0.4)
    assert rouge_l_recall(pred, ref, "rouge_score-default", use_stemmer=True) == pytest.approx(0.6)
    # the default tokenizer drops non-Latin text; the Unicode one keeps it
    assert rouge_l_recall("नमस्ते", "नमस्ते", tokenizer="rouge_score-default") == 0.0
    with pytest.raises(ValueError):
        rouge_l_recall("a", "a", tokenizer="whitespace")


def test_muse_default_tokenizer_is_rouge_scores_own_and_unicode_is_an_option():
    """Issue 22 item 5: the benchmark's tokenizer splits non-ASCII letters out of words
    ("Paraç" → "para"); the Unicode-aware one keeps them."""
    from rouge_score import tokenize

    from evaluation.rouge import ROUGE_TOKENIZERS

    assert tokenize.tokenize("Paraç said", None) == ["para", "said"]
    # default tokenizer: "Paraç said" and "Para said" both give ["para", "said"] -> 1.0
    assert rouge_l_f1("Paraç said", "Para said", "rouge_score-default") == pytest.approx(1.0)
    # unicode-v1: "paraç" != "para" -> LCS 1 of 2 -> 0.5
    assert rouge_l_f1("Paraç said", "Para said", "unicode-v1") == pytest.approx(0.5)
    assert rouge_l_f1("मेरा नाम", "मेरा नाम", "rouge_score-default") == 0.0  # no [a-z0-9]
    assert set(ROUGE_TOKENIZERS) == {"rouge_score-default", "unicode-v1"}
    assert rouge_settings("rouge_score-default")["tokenizer_name"] == "rouge_score-default"
    with pytest.raises(ValueError, match="rouge tokenizer"):
        rouge_settings("whitespace")
    with pytest.raises(ValueError):
        rouge_l_f1("a", "a", "whitespace")
