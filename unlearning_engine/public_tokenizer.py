"""Public tokenizers: byte-level BPE trained on a public corpus, never on the private one
(issue 12 item 3; DESIGN §6, §10).

A DP2-capable model's tokenizer must not depend on the training records: DP-SGD protects the
weights only, and a vocabulary built from the corpus keeps entries that exist only because of one
data subject (measured on the demo: ~100 entries of the forget author, their name among them).
So the demo and test models use a BPE trained on WikiText-2 (Merity et al. 2016, arXiv 1609.07843;
valid + test splits, CC BY-SA 3.0, ``../shared/data/wikitext2``) plus the fixed training template
(:data:`unlearning_engine.data.QA_TEMPLATE`, part of the code, no record text). The SmolLM2 presets
use the pre-trained model's own tokenizer (kind ``"pretrained"``, see
:func:`unlearning_engine.modeling.export_smollm2`).

Built tokenizers for the recipes' vocabulary sizes (384: tests, 2048: demo) are committed under
``unlearning_engine/assets/tokenizers/`` (with the CC BY-SA attribution): they are deterministic
(byte-identical on a rebuild, checked by a test when the shared data is present), make tests fast
and work in a clone without ``shared/``. Other sizes are built at run time from the shared data.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from .data import QA_TEMPLATE
from .modeling import byte_level_bpe, saved_tokenizer_sha256
from .provenance import file_sha256, make_provenance, read_provenance, texts_digest

ASSETS = Path(__file__).resolve().parent / "assets" / "tokenizers"
#: Public corpora a tokenizer may be trained on: source -> (data folder, files, licence).
PUBLIC_SOURCES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "wikitext2": ("wikitext2", ("valid.txt", "test.txt"), "CC BY-SA 3.0 (Merity et al. 2016)"),
    "tiny_shakespeare": ("tiny_shakespeare", ("input.txt",), "public domain (char-rnn, MIT repo)"),
}
DEFAULT_SOURCE = "wikitext2"
#: The fixed part of the training template ("Question: {q}\nAnswer: {a}" without q and a).
TEMPLATE_SEED = QA_TEMPLATE.format(question="", answer="").replace(" ", "")


def tokenizer_name(source: str, vocab_size: int) -> str:
    """Name of a public tokenizer, e.g. ``"wikitext2-bpe-2048"`` (its asset folder)."""
    return f"{source}-bpe-{vocab_size}"


def shared_data_dir(name: str) -> Path:
    """``$UNLEARNING_DATA_DIR/<name>``, else ``<repo>/../shared/data/<name>``, else
    ``/work/shared/data/<name>`` (same lookup as ``evaluation.datafiles.default_data_dir``)."""
    root = os.environ.get("UNLEARNING_DATA_DIR")
    if root:
        return Path(root) / name
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / name
    for cand in (beside, Path("/work/shared/data") / name):
        if cand.is_dir():
            return cand
    return beside


def wikitext_detokenize(line: str) -> str:
    """Undo WikiText's tokenisation of one line: ``@-@``/``@,@``/``@.@`` number separators, spaces
    before punctuation and inside brackets/quotes; ``<unk>`` markers are dropped (after the
    Megatron-LM / lm-eval-harness ``wikitext_detokenizer``, simplified)."""
    s = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    s = s.replace(" <unk>", "").replace("<unk> ", "").replace("<unk>", "")
    for p in (",", ".", ":", ";", "!", "?", "'s", "n't", ")"):
        s = s.replace(" " + p, p)
    s = s.replace("( ", "(")
    return re.sub(r'" ([^"\n]*?) "', r'"\1"', s)


def public_texts(source: str, data_dir: str | Path | None = None) -> tuple[list[str], list[dict]]:
    """Training texts of a public ``source`` and the digests of the files read.

    WikiText-2: non-empty, non-heading lines, detokenised (:func:`wikitext_detokenize`); tiny
    Shakespeare: non-empty lines. Returns ``(texts, [{"name", "sha256", "licence"}])``.

    Raises:
        ValueError: unknown source.
        FileNotFoundError: the data folder or a file is missing (names the folder).
    """
    if source not in PUBLIC_SOURCES:
        raise ValueError(f"unknown public tokenizer source {source!r}; choose one of "
                         f"{sorted(PUBLIC_SOURCES)}")
    folder, files, licence = PUBLIC_SOURCES[source]
    root = Path(data_dir) if data_dir else shared_data_dir(folder)
    texts: list[str] = []
    digests: list[dict] = []
    for f in files:
        path = root / f
        if not path.is_file():
            raise FileNotFoundError(f"public tokenizer corpus {path} not found (set "
                                    f"UNLEARNING_DATA_DIR to the folder holding {folder}/)")
        digests.append({"name": f"{folder}/{f}", "sha256": file_sha256(path), "licence": licence})
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or (source == "wikitext2" and line.startswith("=")):
                continue
            texts.append(wikitext_detokenize(line) if source == "wikitext2" else line)
    return texts, digests


def build_public_tokenizer(vocab_size: int, source: str = DEFAULT_SOURCE,
                           data_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (:func:`unlearning_engine.modeling.byte_level_bpe`) on a public corpus.

    Training texts: the corpus lines (:func:`public_texts`) and, once per line, the template's fixed
    text ``"Question:\\nAnswer:"`` (as if every public paragraph were a formatted record, so that the
    template words get their own tokens). No training record is read. The result carries
    ``tokenizer_provenance`` (kind ``"public_corpus"``, the file digests and the template digest).

    Raises:
        ValueError: unknown source, ``vocab_size`` < 300.
        FileNotFoundError: the public corpus is missing.
    """
    if vocab_size < 300:
        raise ValueError("vocab_size must be >= 300 (256 bytes + specials)")
    texts, digests = public_texts(source, data_dir)
    seeds = [TEMPLATE_SEED] * len(texts)
    tok = byte_level_bpe(texts + seeds, vocab_size)
    digests.append({"name": "unlearning_engine.data.QA_TEMPLATE (fixed text, no record)",
                    "sha256": texts_digest([TEMPLATE_SEED]), "repeats": len(seeds)})
    tok.tokenizer_provenance = make_provenance(
        "public_corpus", tokenizer_name(source, vocab_size), saved_tokenizer_sha256(tok), digests,
        vocab_size=vocab_size, recipe="unlearning_engine.public_tokenizer.build_public_tokenizer")
    return tok


def public_tokenizer(vocab_size: int = 2048, source: str = DEFAULT_SOURCE) -> PreTrainedTokenizerFast:
    """The public tokenizer ``<source>-bpe-<vocab_size>``: the committed asset when there is one
    (its provenance file checked against its ``tokenizer.json``), else built from the shared data.

    Takes no corpus argument on purpose: the tokenizer cannot depend on the training records.
    The result's ``tokenizer_provenance`` has kind ``"public_corpus"``.

    Raises:
        ValueError: unknown source, vocab_size < 300, or a committed asset whose provenance does not
            match its tokenizer.json.
        FileNotFoundError: no asset and no shared data.
    """
    asset = ASSETS / tokenizer_name(source, vocab_size)
    if (asset / "tokenizer.json").is_file():
        tok = PreTrainedTokenizerFast.from_pretrained(str(asset), local_files_only=True)
        prov = read_provenance(asset)
        if prov["kind"] != "public_corpus":
            raise ValueError(f"committed tokenizer {asset.name} has provenance {prov['kind']}: "
                             f"{prov.get('reason')}")
        tok.tokenizer_provenance = prov
        return tok
    return build_public_tokenizer(vocab_size, source)


def write_asset(vocab_size: int, source: str = DEFAULT_SOURCE, root: Path = ASSETS) -> Path:
    """Build and save the public tokenizer as a committed asset (``python -m
    unlearning_engine.public_tokenizer 384 2048``). Returns the asset folder."""
    from .modeling import save_tokenizer

    out = root / tokenizer_name(source, vocab_size)
    save_tokenizer(build_public_tokenizer(vocab_size, source), out)
    return out


if __name__ == "__main__":  # pragma: no cover - maintenance command
    import sys

    for v in sys.argv[1:] or ["384", "2048"]:
        print(write_asset(int(v)))
