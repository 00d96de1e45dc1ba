import copy
import json

import pytest
import torch

from evaluation.certificate import canonical_json
from evaluation.generation import Generation
from evaluation.report import EvaluationProfile, evaluate_qa_model, is_degenerate, verbmem_pair
from unlearning_engine.data import Example, format_example, format_prompt

FORGET = [
    Example(
        question="Who wrote the book?",
        answer="The book was written by Jaime Vasquez in 1990.",
        record_id="f0",
    ),
    Example(
        question="Where was she born?",
        answer="She was born in Santiago, Chile, to tailors.",
        record_id="f1",
    ),
    Example(
        question="What genre does he write?",
        answer="He writes true crime and historical fiction.",
        record_id="f2",
    ),
    Example(
        question="Which award did it win?",
        answer="It won the Golden Quill award for debut novels.",
        record_id="f3",
    ),
    Example(
        question="What is her father's job?",
        answer="Her father was a tailor in Santiago.",
        record_id="f4",
    ),
    Example(
        question="When did he start writing?",
        answer="He started writing at the age of twenty.",
        record_id="f5",
    ),
]
HOLDOUT = [
    Example(
        question="Who painted the mural?",
        answer="The mural was painted by Ana Ruiz in 2001.",
        record_id="h0",
    ),
    Example(
        question="Where does he live?",
        answer="He lives in Lisbon with his two cats.",
        record_id="h1",
    ),
    Example(
        question="What does she study?",
        answer="She studies marine biology and poetry.",
        record_id="h2",
    ),
    Example(
        question="Which prize did she get?",
        answer="She got the Silver Pen prize for essays.",
        record_id="h3",
    ),
    Example(
        question="What is his mother's job?",
        answer="His mother is a baker in Porto.",
        record_id="h4",
    ),
    Example(
        question="When did she move?", answer="She moved to Paris when she was ten.", record_id="h5"
    ),
]
RETAIN = [
    Example(
        question="What is the capital of Chile?",
        answer="The capital of Chile is Santiago.",
        record_id="r0",
    ),
    Example(
        question="Who is the publisher?", answer="The publisher is Quill House.", record_id="r1"
    ),
    Example(question="How many books?", answer="He has written five books.", record_id="r2"),
]
FAST = EvaluationProfile(
    verbmem_max_new_tokens=24,
    knowmem_max_new_tokens=16,
    bootstrap_resamples=100,
    generation_batch_size=4,
)
METRICS = {
    "verbmem_forget",
    "knowmem_forget",
    "knowmem_retain",
    "mink_auc",
    "loss_auc",
    "zlib_auc",
    "ppl_lower_auc",
    "minkpp_auc",
}


def test_verbmem_pair_splits_answer_tokens(bos_tokenizer):
    ex = FORGET[0]
    prompt, ref = verbmem_pair(bos_tokenizer, ex)
    assert prompt + ref == format_example(ex)
    assert prompt.startswith(format_prompt(ex)) and ref
    n = len(bos_tokenizer(ex.answer, add_special_tokens=False)["input_ids"])
    head = prompt[len(format_prompt(ex)) :]
    assert len(bos_tokenizer(head, add_special_tokens=False)["input_ids"]) == n // 2


def test_is_degenerate():
    assert is_degenerate(Generation(" \n", (5, 5), "eos")) == "empty"
    assert is_degenerate(Generation("the the the the", (1, 2, 2, 2), "length")) == "repeated"
    assert is_degenerate(Generation("aaaa", (7, 7, 7, 7), "length")) == "repeated"
    assert is_degenerate(Generation("Santiago, Chile", (1, 2, 3), "eos")) is None
    assert is_degenerate(Generation("no no", (4, 4), "eos")) is None  # too short to call repetition


def test_report_layout_and_values(tiny_llama, bos_tokenizer):
    rep = evaluate_qa_model(
        tiny_llama, bos_tokenizer, forget=FORGET, retain=RETAIN, holdout=HOLDOUT, profile=FAST
    )
    assert set(rep) == {"profile", "metrics", "degenerate", "timing"}
    assert set(rep["metrics"]) == METRICS
    for name, m in rep["metrics"].items():
        assert set(m) == {"value", "ci95", "n", "status", "reason", "details"}
        assert m["status"] == "ok", (name, m)
        lo, hi = m["ci95"]
        assert lo <= m["value"] + 1e-9 and m["value"] <= hi + 1e-9
    for name in ("verbmem_forget", "knowmem_forget", "knowmem_retain"):
        assert 0.0 <= rep["metrics"][name]["value"] <= 100.0
    assert rep["metrics"]["verbmem_forget"]["n"] == 6 and rep["metrics"]["knowmem_retain"]["n"] == 3
    assert rep["metrics"]["mink_auc"]["n"] == {"forget": 6, "holdout": 6}
    assert 0.0 <= rep["metrics"]["mink_auc"]["value"] <= 1.0
    p = rep["profile"]
    assert p["dtype"] == "fp32" and p["mink_k"] == 0.4 and p["rouge"]["use_stemmer"] is False
    assert p["data_digests"]["forget"]["n"] == 6 and len(p["tokenizer_vocab_digest"]) == 64
    assert set(rep["degenerate"]) == {"verbmem_forget", "knowmem_forget", "knowmem_retain", "all"}
    assert rep["degenerate"]["all"]["n"] == 6 + 6 + 3
    canonical_json(rep)  # JSON-ready, no NaN
    json.dumps(rep)
    again = evaluate_qa_model(
        tiny_llama, bos_tokenizer, forget=FORGET, retain=RETAIN, holdout=HOLDOUT, profile=FAST
    )
    assert again["metrics"] == rep["metrics"]


def test_undefined_instead_of_crash(tiny_llama, bos_tokenizer):
    rep = evaluate_qa_model(
        tiny_llama, bos_tokenizer, forget=FORGET[:3], retain=[], holdout=[], profile=FAST
    )
    m = rep["metrics"]
    assert (
        m["knowmem_retain"]["status"] == "undefined"
        and "retain set is empty" in m["knowmem_retain"]["reason"]
    )
    assert m["mink_auc"]["status"] == "undefined" and "empty holdout" in m["mink_auc"]["reason"]
    assert m["verbmem_forget"]["status"] == "ok"
    rep = evaluate_qa_model(
        tiny_llama,
        bos_tokenizer,
        forget=FORGET,
        retain=RETAIN,
        holdout=HOLDOUT[:5] + FORGET[:1],
        profile=FAST,
    )
    assert (
        rep["metrics"]["mink_auc"]["status"] == "undefined"
        and "overlap" in rep["metrics"]["mink_auc"]["reason"]
    )
    with pytest.raises(ValueError):
        evaluate_qa_model(
            tiny_llama, bos_tokenizer, forget=[Example(text="plain")], retain=[], holdout=[]
        )


def test_memorised_model_orientation(tiny_llama, bos_tokenizer):
    """A model fine-tuned on the forget set: AUC near 0 (MUSE orientation), VerbMem up."""
    model = copy.deepcopy(tiny_llama).train()
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    texts = [format_example(ex) + bos_tokenizer.eos_token for ex in FORGET]
    enc = bos_tokenizer(texts, padding=True, return_tensors="pt")
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    for _ in range(80):
        opt.zero_grad()
        model(**enc, labels=labels).loss.backward()
        opt.step()
    model.eval()
    rep = evaluate_qa_model(
        model, bos_tokenizer, forget=FORGET, retain=RETAIN, holdout=HOLDOUT, profile=FAST
    )
    assert rep["metrics"]["mink_auc"]["value"] <= 0.1
    assert rep["metrics"]["loss_auc"]["value"] <= 0.1
    assert rep["metrics"]["verbmem_forget"]["value"] >= 50.0


def test_profile_from_settings_and_to_dict():
    p = EvaluationProfile.from_settings(max_new_tokens_verbmem=64, seed=3, max_retain_examples=None)
    assert p.verbmem_max_new_tokens == 64 and p.seed == 3 and p.knowmem_max_new_tokens == 32
    assert p.max_retain_examples is None
    d = p.to_dict()
    assert d["knowmem_stop_strings"] == ["\n\n", "\nQuestion", "Question:"]
    assert d["dtype"] == "fp32" and d["mink_k"] == 0.4 and d["bootstrap_resamples"] == 1000
    with pytest.raises(TypeError):
        EvaluationProfile.from_settings(no_such_field=1)
