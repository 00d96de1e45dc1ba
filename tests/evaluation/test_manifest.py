"""Issue 23 item 1: the evaluation manifest and its validator (no Django)."""
import hashlib

import pytest

from evaluation.certificate import canonical_json
from evaluation.manifest import (
    EvaluationManifest,
    ManifestError,
    SplitRecord,
    manifest_build,
    manifest_validate,
    split_records,
)
from unlearning_engine.data import Example, normalise_text, split_overlaps, text_digest
from unlearning_engine.errors import UnlearningInputError
from unlearning_engine.methods.base import check_disjoint


def qa(i, q=None, a=None):
    return Example(question=q or f"Who wrote book {i}?", answer=a or f"Author {i} wrote it.")


def build(forget, retain, holdout, **kw):
    splits = {"forget": split_records(forget, [f"f{i}" for i in range(len(forget))]),
              "retain": split_records(retain, [f"r{i}" for i in range(len(retain))]),
              "holdout": split_records(holdout, [f"h{i}" for i in range(len(holdout))])}
    splits.update(kw.pop("splits", {}))
    return manifest_build(splits=splits, dataset_sha256="d" * 64, model_weights_sha256="w" * 64,
                          evaluation_profile={"name": "tofu-qa-v1", "seed": 0}, forget_set_sha256="s" * 64, **kw)


FORGET, RETAIN, HOLDOUT = [qa(i) for i in range(3)], [qa(i) for i in range(10, 14)], [qa(i) for i in range(20, 23)]


def test_normalised_text_folds_case_whitespace_and_compatibility_forms():
    assert normalise_text("  Who  WROTE\tthe\u00a0book?\n") == "who wrote the book?"
    assert normalise_text("\ufb01ction \uff11") == "fiction 1"  # NFKC: ligature and full-width digit
    assert text_digest(qa(1, "Who wrote X?", "Ann.")) == hashlib.sha256(
        b"question: who wrote x? answer: ann.").hexdigest()


def test_a_sound_manifest_passes_and_its_digest_is_the_canonical_json_sha256():
    m = build(FORGET, RETAIN, HOLDOUT)
    manifest_validate(m, training_text_digests=[text_digest(e) for e in FORGET + RETAIN],
                      frozen_forget_ids=["f0", "f1", "f2"], frozen_forget_sha256="s" * 64)
    assert m.sha256 == hashlib.sha256(canonical_json(m.to_dict())).hexdigest()
    assert EvaluationManifest.from_dict(m.to_dict()).sha256 == m.sha256
    summary = m.summary()
    assert summary["sha256"] == m.sha256
    assert {k: v["count"] for k, v in summary["splits"].items()} == {"forget": 3, "holdout": 3, "retain": 4}
    # any change of a split, the weights or the profile changes the digest
    assert build(FORGET, RETAIN[:3], HOLDOUT).sha256 != m.sha256
    assert manifest_build(splits=m.splits, dataset_sha256="d" * 64, model_weights_sha256="x" * 64,
                          evaluation_profile=m.evaluation_profile,
                          forget_set_sha256="s" * 64).sha256 != m.sha256


def test_overlap_by_record_id_is_refused():
    m = build(FORGET, RETAIN, HOLDOUT, splits={"holdout": (SplitRecord("f1", text_digest(qa(99))),)})
    with pytest.raises(ManifestError) as err:
        manifest_validate(m)
    assert err.value.problems == [
        "the forget and holdout splits overlap: 1 record(s) by record id (f1); they must be disjoint"]


def test_same_text_under_different_ids_is_refused():
    twin = qa(0, q="who wrote  BOOK 0?", a="Author 0 wrote it. ")  # FORGET[0] re-typed
    m = build(FORGET, RETAIN + [twin], HOLDOUT)
    with pytest.raises(ManifestError, match=r"the forget and retain splits overlap: 1 retain record\(s\) with the "
                                            r"same text as a forget record under another id \(r4\)"):
        manifest_validate(m)
    # the engine's forget/retain check and the report's count use the same rule
    assert [o.kind for o in split_overlaps(FORGET, RETAIN + [twin])] == ["text"]
    with pytest.raises(UnlearningInputError, match="same text"):
        check_disjoint(FORGET, RETAIN + [twin])


def test_empty_retain_is_refused():
    with pytest.raises(ManifestError) as err:
        manifest_validate(build(FORGET, [], HOLDOUT))
    assert err.value.problems == ["the retain split is empty"]
    with pytest.raises(ManifestError, match="the forget split is empty; the holdout split is empty"):
        manifest_validate(build([], RETAIN, []))


def test_holdout_drawn_from_the_training_corpus_is_refused():
    trained = qa(50, "What did Author 50 write?", "Poems.")
    m = build(FORGET, RETAIN, HOLDOUT + [Example(question="WHAT did Author 50 write?", answer="Poems.")])
    training = [text_digest(e) for e in FORGET + RETAIN + [trained]]
    with pytest.raises(ManifestError, match=r"holdout split is drawn from the training corpus: 1 holdout "
                                            r"record\(s\) have the text of a training record \(h3\)"):
        manifest_validate(m, training_text_digests=training)


def test_mismatch_with_the_frozen_resolution_is_refused():
    m = build(FORGET, RETAIN, HOLDOUT)
    with pytest.raises(ManifestError) as err:
        manifest_validate(m, frozen_forget_ids=["f0", "f1", "f7"], frozen_forget_sha256="t" * 64)
    assert err.value.problems[0] == ("the forget split does not match the frozen resolution of the tickets: frozen "
                                     "records missing from it (f7); records not in the frozen resolution (f2)")
    assert "differs from the one frozen at approval" in err.value.problems[1]


def test_forget_overlapping_the_full_retain_population_is_refused():
    m = build(FORGET, RETAIN, HOLDOUT)
    population = split_records(RETAIN + [FORGET[2]], [f"r{i}" for i in range(5)])
    with pytest.raises(ManifestError, match=r"the forget and retain \(training\) splits overlap"):
        manifest_validate(m, retain_population=population)


def test_every_problem_is_reported_at_once():
    m = build(FORGET, [], FORGET[:1])
    with pytest.raises(ManifestError) as err:
        manifest_validate(m, frozen_forget_ids=["f0"])
    assert len(err.value.problems) == 3
    assert str(err.value).startswith("evaluation manifest refused: the retain split is empty; the forget and holdout")


def test_report_is_tied_to_its_manifest(tiny_llama, bos_tokenizer):
    from evaluation.report import EvaluationProfile, evaluate_qa_model

    forget, retain, holdout = [qa(i) for i in range(6)], RETAIN, [qa(i) for i in range(20, 26)]
    m = build(forget, retain, holdout)
    fast = EvaluationProfile(verbmem_max_new_tokens=4, knowmem_max_new_tokens=4, bootstrap_resamples=10)
    rep = evaluate_qa_model(tiny_llama, bos_tokenizer, forget=forget, retain=retain, holdout=holdout,
                            profile=fast, manifest=m)
    assert rep["manifest_sha256"] == m.sha256
    with pytest.raises(ValueError, match="the retain split is not the evaluation manifest's"):
        evaluate_qa_model(tiny_llama, bos_tokenizer, forget=forget, retain=retain[:2], holdout=holdout,
                          profile=fast, manifest=m)
