"""Issue 13 item 9: overlapping forget and retain splits are refused (utility undefined with a
reason, as forget vs holdout makes the membership AUC undefined), never scored."""
from evaluation.report import evaluate_qa_model, split_overlap
from tests.evaluation.test_report import FAST, FORGET, HOLDOUT, RETAIN
from unlearning_engine.data import Example


def test_split_overlap_counts_by_text_and_record_id():
    a = [Example(question="q1", answer="a1", record_id="r1"), Example(question="q2", answer="a2")]
    b = [Example(question="q1", answer="a1"), Example(question="other", answer="x", record_id="r1"),
         Example(question="q3", answer="a3", record_id="r3")]
    assert split_overlap(a, b) == 2
    assert split_overlap(a, []) == 0 and split_overlap([], b) == 0


def test_overlapping_forget_and_retain_make_utility_undefined(tiny_llama, bos_tokenizer):
    rep = evaluate_qa_model(tiny_llama, bos_tokenizer, forget=FORGET, retain=RETAIN + FORGET[:2],
                            holdout=HOLDOUT, profile=FAST)
    m = rep["metrics"]["knowmem_retain"]
    assert m["status"] == "undefined" and m["value"] is None
    assert "forget and retain sets overlap (2 shared items)" in m["reason"]
    assert rep["metrics"]["verbmem_forget"]["status"] == "ok"  # the forget metrics are still measured
    clean = evaluate_qa_model(tiny_llama, bos_tokenizer, forget=FORGET, retain=RETAIN, holdout=HOLDOUT,
                              profile=FAST)
    assert clean["metrics"]["knowmem_retain"]["status"] == "ok"
