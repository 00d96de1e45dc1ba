"""Public tokenizer and tokenizer provenance (issue 12 item 3): no vocabulary entry depends on the
private corpus, the forget set included; the provenance travels with every artifact."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from unlearning_engine.data import Example, format_example, format_prompt
from unlearning_engine.errors import UnlearningInputError
from unlearning_engine.modeling import (
    build_model,
    load_artifact,
    save_artifact,
    train_private_corpus_tokenizer,
    train_tokenizer,
)
from unlearning_engine.provenance import (
    PROVENANCE_FILE,
    describe,
    make_provenance,
    read_provenance,
    require_public_tokenizer,
    tokenizer_sha256,
)
from unlearning_engine.public_tokenizer import (
    ASSETS,
    build_public_tokenizer,
    public_texts,
    public_tokenizer,
    shared_data_dir,
    wikitext_detokenize,
)

DEMO = Path(__file__).resolve().parents[2] / "requests_app" / "fixtures" / "tofu_demo" / "train.jsonl"
HAVE_WIKITEXT = (shared_data_dir("wikitext2") / "valid.txt").is_file()


def _demo_examples() -> list[Example]:
    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()]
    return [Example(question=r["question"], answer=r["answer"]) for r in rows]


@pytest.mark.parametrize("vocab", [384, 2048])
def test_committed_asset_is_public_and_matches_its_tokenizer_json(vocab):
    asset = ASSETS / f"wikitext2-bpe-{vocab}"
    prov = read_provenance(asset)
    assert prov["kind"] == "public_corpus"
    assert prov["name"] == f"wikitext2-bpe-{vocab}"
    assert prov["sha256"] == tokenizer_sha256(asset)
    assert {s["name"] for s in prov["trained_on"]} >= {"wikitext2/valid.txt", "wikitext2/test.txt"}
    digests = {s["name"]: s["sha256"] for s in prov["trained_on"]}
    # the digests in ../shared/data/wikitext2/SOURCE.md
    assert digests["wikitext2/valid.txt"].startswith("f0737ed31fc1329026e9")
    assert digests["wikitext2/test.txt"].startswith("d790b833ef8cf03a90db")
    tok = public_tokenizer(vocab)
    assert len(tok) == vocab
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2)
    assert tok.tokenizer_provenance == prov
    assert (ASSETS / "NOTICE.md").read_text().count("CC BY-SA 3.0") >= 2


@pytest.mark.skipif(not HAVE_WIKITEXT, reason="needs ../shared/data/wikitext2")
@pytest.mark.parametrize("vocab", [384, 2048])
def test_rebuild_from_the_public_corpus_is_byte_identical_to_the_committed_asset(vocab):
    built = build_public_tokenizer(vocab)
    assert built.tokenizer_provenance["sha256"] == read_provenance(ASSETS / f"wikitext2-bpe-{vocab}")["sha256"]


def test_no_vocabulary_entry_depends_on_the_forget_set():
    """The leak of the old corpus tokenizer, and its absence with the public one."""
    examples = _demo_examples()
    texts = [format_example(e) for e in examples]
    with_forget = train_private_corpus_tokenizer(texts, 2048).get_vocab()
    without = train_private_corpus_tokenizer(texts[:-20], 2048).get_vocab()  # last author removed
    only_forget = set(with_forget) - set(without)
    assert len(only_forget) >= 50  # measured 101, the author's name pieces among them ("ikolai")
    # the public tokenizer is a function of the public corpus only: no corpus argument exists
    assert set(inspect.signature(public_tokenizer).parameters) == {"vocab_size", "source"}
    assert set(inspect.signature(build_public_tokenizer).parameters) == {"vocab_size", "source", "data_dir"}
    assert public_tokenizer(2048).get_vocab() == public_tokenizer(2048).get_vocab()


def test_public_tokenizer_keeps_the_prompt_prefix_property():
    tok = public_tokenizer(2048)
    for ex in _demo_examples()[::97]:
        full = tok(format_example(ex)).input_ids
        prompt = tok(format_prompt(ex)).input_ids
        assert full[: len(prompt)] == prompt
        assert tok.decode(full, skip_special_tokens=True) == format_example(ex)
    assert tok.tokenize("Question: x\nAnswer: y")[:2] == ["Question", ":"]


def test_private_corpus_tokenizer_is_flagged_and_refused_for_dp():
    assert train_tokenizer is train_private_corpus_tokenizer
    tok = train_private_corpus_tokenizer(["alpha beta gamma"] * 3, 300)
    prov = tok.tokenizer_provenance
    assert prov["kind"] == "private_corpus"
    assert prov["trained_on"][0]["records"] == 3
    with pytest.raises(UnlearningInputError, match="private corpus"):
        require_public_tokenizer(prov)


def test_provenance_travels_with_the_artifact(tmp_path):
    tok = public_tokenizer(384)
    save_artifact(build_model(tok, "test", seed=0), tok, tmp_path / "a")
    assert read_provenance(tmp_path / "a") == tok.tokenizer_provenance
    model, loaded = load_artifact(tmp_path / "a")
    assert loaded.tokenizer_provenance["kind"] == "public_corpus"
    save_artifact(model, loaded, tmp_path / "b")  # the next model of the lineage
    assert tokenizer_sha256(tmp_path / "b") == tokenizer_sha256(tmp_path / "a")
    assert require_public_tokenizer(read_provenance(tmp_path / "b"))["name"] == "wikitext2-bpe-384"


def test_unknown_provenance_is_flagged(tmp_path):
    tok = public_tokenizer(384)
    d = tmp_path / "a"
    save_artifact(build_model(tok, "test", seed=0), tok, d)
    (d / PROVENANCE_FILE).unlink()  # e.g. an operator's own artifact
    prov = read_provenance(d)
    assert prov["kind"] == "unknown" and "no tokenizer_provenance.json" in prov["reason"]
    with pytest.raises(UnlearningInputError, match="provenance is unknown"):
        require_public_tokenizer(prov)
    _, loaded = load_artifact(d)
    assert loaded.tokenizer_provenance["kind"] == "unknown"
    with pytest.raises(UnlearningInputError):
        require_public_tokenizer(None)

    (d / PROVENANCE_FILE).write_text("{not json")
    assert read_provenance(d)["kind"] == "unknown"
    (d / PROVENANCE_FILE).write_text(json.dumps({**tok.tokenizer_provenance, "kind": "public"}))
    assert read_provenance(d)["kind"] == "unknown"


def test_a_changed_tokenizer_loses_its_public_claim(tmp_path):
    tok = public_tokenizer(384)
    d = tmp_path / "a"
    save_artifact(build_model(tok, "test", seed=0), tok, d)
    # tokenizer.json edited after the provenance was written
    data = json.loads((d / "tokenizer.json").read_text())
    data["model"]["vocab"]["zzz-private-name"] = len(data["model"]["vocab"])
    (d / "tokenizer.json").write_text(json.dumps(data))
    prov = read_provenance(d)
    assert prov["kind"] == "unknown" and "describes tokenizer sha256" in prov["reason"]
    # a tokenizer changed in memory (a token added) is saved as unknown, not with a stale claim
    tok2 = public_tokenizer(384)
    tok2.add_tokens(["Nikolai"])
    save_artifact(build_model(tok2, "test", seed=0), tok2, tmp_path / "b")
    prov2 = read_provenance(tmp_path / "b")
    assert prov2["kind"] == "unknown" and "changed since its provenance" in prov2["reason"]


def test_make_provenance_validates():
    sha = "a" * 64
    with pytest.raises(ValueError, match="kind"):
        make_provenance("public", "x", sha, [{"name": "f", "sha256": sha}])
    with pytest.raises(ValueError, match="64 hex"):
        make_provenance("public_corpus", "x", "abc", [{"name": "f", "sha256": sha}])
    with pytest.raises(ValueError, match="trained_on"):
        make_provenance("pretrained", "x", sha, [])
    rec = make_provenance("pretrained", "SmolLM2", sha, [{"name": "gguf", "sha256": sha}])
    assert require_public_tokenizer(rec) is rec


def test_describe_fits_the_model_field():
    prov = public_tokenizer(2048).tokenizer_provenance
    text = describe(prov, vocab_size=2048)
    assert len(text) <= 200
    assert text.startswith("byte-level BPE, vocabulary 2048; public_corpus 'wikitext2-bpe-2048'")
    assert prov["sha256"][:12] in text
    assert len(describe({**prov, "name": "n" * 300})) == 200


def test_public_corpus_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown public tokenizer source"):
        public_texts("tofu")
    with pytest.raises(FileNotFoundError, match="UNLEARNING_DATA_DIR"):
        public_texts("wikitext2", tmp_path)
    with pytest.raises(ValueError, match=">= 300"):
        public_tokenizer(200)


def test_build_from_a_given_public_folder(tmp_path):
    (tmp_path / "valid.txt").write_text(" = Heading = \n The cat sat on the mat . \n" * 20)
    (tmp_path / "test.txt").write_text(" A dog ran @-@ fast , then <unk> stopped . \n" * 20)
    texts, digests = public_texts("wikitext2", tmp_path)
    assert texts[:2] == ["The cat sat on the mat.", "The cat sat on the mat."]
    assert "A dog ran-fast, then stopped." in texts
    assert len(digests) == 2
    tok = build_public_tokenizer(300, data_dir=tmp_path)
    assert tok.tokenizer_provenance["kind"] == "public_corpus"
    assert tok.tokenizer_provenance["trained_on"][-1]["repeats"] == len(texts)


def test_wikitext_detokenize():
    assert wikitext_detokenize('He said " hello " ( in 1 @,@ 000 cases ) , it \'s 2 @.@ 5 .') == \
        'He said "hello" (in 1,000 cases), it\'s 2.5.'
