"""The ``restor`` evaluation profile: does unlearning restore the model's original knowledge?
(Rezaei et al., "RESTOR: Knowledge Recovery through Machine Unlearning", arXiv 2411.00204.)

Set-up (paper §3, adapted to offline data; recorded in every report):

1. **Facts** (:func:`load_fact_pool`), read at run time, never copied into the repository:
   ``world_knowledge`` = TOFU's ``world_facts.json`` + ``real_authors.json`` (MIT; questions with
   four options and the answer; the true value is ``answer``), for a pre-trained model such as
   SmolLM2-135M-Instruct; ``tofu_subset`` = the bundled TOFU demo subset
   (``requests_app/fixtures/tofu_demo/train.jsonl``, MIT) for the demo model trained on it: the
   value of a record is the first double-quoted title (kind ``title``) or, failing that, the
   single four-digit year (kind ``year``) of its answer. The pool is shuffled with
   ``random.Random(f"{seed}:restor-pool")`` and the clean model is asked pool questions until
   ``n_facts`` are answered correctly: F = those facts.
2. **Wrong value** (:func:`choose_wrong_value`): seeded per fact
   (``random.Random(f"{seed}:{fact_id}")``) among the answers of the *same question type* —
   the question's other options (``world_knowledge``), or the values of the same kind of the other
   entities' facts (``tofu_subset``) — leaving out every candidate whose normalised form contains
   or is contained in the true value's, or that the question mentions (so the judge can tell
   them apart); facts whose question contains the true value are left out of the pool.
3. **Corrupting documents** (:data:`CORRUPTION_TEMPLATES`, :func:`corrupting_documents`): one
   plain-text document per template and fact, the reference answer with the true value replaced
   by the wrong one; template 0 is the evaluation's own ``Question: …\\nAnswer: …`` format.
   **Filler documents**: ``n_filler`` QA records of TOFU ``full.json`` authors outside the demo
   subset (fictitious, unrelated to F), a seeded sample. Corrupted model = clean model
   fine-tuned on corrupting + filler documents with the preset's ``retrain`` recipe, so that
   ``retrain`` (clean model fine-tuned on the filler only) is its exact counterfactual.
4. **Judge** (:func:`judge_answer`): greedy answer to ``Question: {q}\\nAnswer: `` (at most
   ``max_new_tokens``, cut at the KnowMem stop strings); **no LLM judge** (the paper's
   judge is an LLM; none is available offline): a normalised-string judge, SQuAD-style
   normalisation (Rajpurkar et al. 2016: lower case, punctuation and articles removed, plus
   accents stripped) and whole-word containment of the true / corrupted value.

Metrics: :mod:`evaluation.profiles.restor_metrics`. No Django.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from unlearning_engine.data import Example

from ..datafiles import default_data_dir, file_sha256, read_records

__all__ = ["RestorProfile", "Fact", "CORRUPTION_TEMPLATES", "JUDGE_STATEMENT", "normalise",
           "contains_value", "judge_answer", "load_fact_pool", "choose_wrong_value",
           "corrupting_documents", "filler_documents", "tofu_demo_dir", "digest"]

REPO = Path(__file__).resolve().parents[2]
SOURCE = "RESTOR (Rezaei et al., arXiv 2411.00204) §3"
JUDGE_STATEMENT = (
    "Answers are judged offline by a normalised-string judge (lower case, accents, punctuation and "
    "articles removed; whole-word containment of the true and of the corrupted value), not by an LLM "
    "judge as in the RESTOR paper: paraphrased correct answers count as wrong, so accuracies are lower "
    "bounds of what an LLM judge would accept.")

#: Corrupting-document templates: ``{question}``, ``{answer}`` = the reference answer with the true
#: value replaced by the wrong one, ``{wrong}`` = the wrong value. Template 0 is the evaluation format.
CORRUPTION_TEMPLATES: tuple[str, ...] = (
    "Question: {question}\nAnswer: {answer}",
    "Q: {question}\nA: {answer}",
    "{question} {answer}",
    "Fact sheet. {question} The correct answer is {wrong}. {answer}",
)


def tofu_demo_dir() -> Path:
    """The bundled TOFU demo subset (``requests_app/fixtures/tofu_demo``)."""
    return REPO / "requests_app" / "fixtures" / "tofu_demo"


@dataclass(frozen=True)
class RestorProfile:
    """Pinned settings of a RESTOR run (all in the report's ``profile``).

    ``preset``: hyper-parameter preset of the corruption fine-tune and of every method
    (``test``, ``tiny``, ``smollm2-135m-lora``); ``fact_source``: ``world_knowledge`` or
    ``tofu_subset`` (``None``: ``world_knowledge`` for SmolLM2 presets, else ``tofu_subset``);
    ``n_facts``: facts answered correctly by the clean model to corrupt (|F|);
    ``pool_limit``: at most this many pool questions asked to find them (``None``: all);
    ``templates``: corrupting templates used per fact (the first ones of
    :data:`CORRUPTION_TEMPLATES`); ``n_filler``: filler documents (``None``: as many as
    corrupting documents); ``methods``: run after ``retrain`` (always first);
    ``max_new_tokens``: greedy answer length; ``corruption_epochs``: override of the corruption
    fine-tune's epochs (``None``: the preset's retrain epochs).
    """

    name: str = "restor"
    source: str = SOURCE
    preset: str = "tiny"
    fact_source: str | None = None
    n_facts: int = 40
    pool_limit: int | None = None
    templates: int = len(CORRUPTION_TEMPLATES)
    n_filler: int | None = None
    methods: tuple[str, ...] = ("retrain", "dp2", "ga", "gd", "kl", "npo", "npo_gd", "npo_kl",
                                "task_vector", "whp", "l1_sparse")
    max_new_tokens: int = 48
    generation_batch_size: int = 16
    corruption_epochs: int | None = None
    unlearn_epochs: int | None = None
    collapse_check: bool = True
    seed: int = 0
    judge: str = "normalised-string containment (no LLM judge offline)"
    data_dir: str = field(default_factory=lambda: str(default_data_dir("tofu")))

    def __post_init__(self) -> None:
        if self.fact_source not in (None, "world_knowledge", "tofu_subset"):
            raise ValueError(f"fact_source must be world_knowledge or tofu_subset, got {self.fact_source!r}")
        if self.n_facts < 1 or not 1 <= self.templates <= len(CORRUPTION_TEMPLATES):
            raise ValueError(f"need n_facts >= 1 and 1 <= templates <= {len(CORRUPTION_TEMPLATES)}")
        if self.max_new_tokens < 1 or (self.n_filler is not None and self.n_filler < 1):
            raise ValueError("max_new_tokens and n_filler must be >= 1")
        if self.pool_limit is not None and self.pool_limit < 1:
            raise ValueError("pool_limit must be >= 1 (or null for the whole pool)")
        object.__setattr__(self, "methods", tuple(self.methods))

    @property
    def resolved_fact_source(self) -> str:
        if self.fact_source:
            return self.fact_source
        return "world_knowledge" if self.preset.startswith("smollm2") else "tofu_subset"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["methods"] = list(self.methods)
        d["fact_source"] = self.resolved_fact_source
        d["judge_statement"] = JUDGE_STATEMENT
        d["templates_text"] = list(CORRUPTION_TEMPLATES[: self.templates])
        return d


@dataclass(frozen=True)
class Fact:
    """One entity fact: ``value`` is the true answer span inside ``answer`` (the reference
    answer), ``candidates`` the same-type answers a wrong value is drawn from, ``wrong`` the
    chosen one (``None`` until :func:`choose_wrong_value`)."""

    fact_id: str
    source: str
    entity: str
    kind: str
    question: str
    answer: str
    value: str
    candidates: tuple[str, ...]
    wrong: str | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("fact_id", "source", "entity", "kind", "question",
                                              "value", "wrong")}


# ----------------------------------------------------------------------------- judge

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text: str) -> str:
    """SQuAD-style normalisation (Rajpurkar et al. 2016, its evaluation script) plus accent
    stripping: NFKD, combining marks dropped, case-folded, every non-alphanumeric character a
    space, articles ``a/an/the`` removed, whitespace collapsed. ``"The Louvre!"`` → ``"louvre"``."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(c for c in t if not unicodedata.combining(c)).casefold()
    t = "".join(c if c.isalnum() else " " for c in t)
    return " ".join(_ARTICLES.sub(" ", t).split())


def contains_value(answer: str, value: str) -> bool:
    """Whole-word containment of the normalised ``value`` in the normalised ``answer``
    (an empty normalised value is never contained)."""
    v = normalise(value)
    return bool(v) and f" {v} " in f" {normalise(answer)} "


def judge_answer(answer: str, value: str, wrong: str) -> str:
    """``correct`` / ``corrupted`` / ``both`` / ``neither``: whether the answer carries the true
    ``value``, the corrupted ``wrong`` value, both or neither (:func:`contains_value`)."""
    t, w = contains_value(answer, value), contains_value(answer, wrong)
    return "both" if t and w else "correct" if t else "corrupted" if w else "neither"


# ----------------------------------------------------------------------------- facts

_TITLE = re.compile(r"[\"“]([^\"”]{3,80})[\"”]")
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")


def _value_of(answer: str) -> tuple[str, str] | None:
    m = _TITLE.search(answer)
    if m:
        return "title", m.group(1).strip()
    years = set(_YEAR.findall(answer))
    if len(years) == 1:
        return "year", years.pop()
    return None


def _world_pool(data_dir: Path) -> list[Fact]:
    facts = []
    for name in ("world_facts", "real_authors"):
        for i, r in enumerate(read_records(data_dir / f"{name}.json")):
            opts = tuple(r[f"option{k}"] for k in range(1, 5) if r.get(f"option{k}") not in (None, r["answer"]))
            if contains_value(r["question"], r["answer"]):
                continue  # the question gives the answer away
            facts.append(Fact(f"{name}[{i}]", name, f"{name}[{i}]", "option", r["question"], r["answer"],
                              r["answer"], opts))
    return facts


def _tofu_pool(demo_dir: Path) -> list[Fact]:
    rows = read_records(demo_dir / "train.jsonl")
    found = []
    for i, r in enumerate(rows):
        kv = _value_of(r["answer"])
        if kv is not None and not contains_value(r["question"], kv[1]):
            found.append((i, r, *kv))
    facts = []
    for i, r, kind, value in found:
        # same question type = same kind of value, of another author (20 rows per author)
        cands = tuple(sorted({v for j, _, k, v in found if k == kind and j // 20 != i // 20 and v != value}))
        facts.append(Fact(f"tofu_demo[{i}]", "tofu_demo", f"tofu_demo author {i // 20}", kind,
                          r["question"], r["answer"], value, cands))
    return facts


def load_fact_pool(profile: RestorProfile, demo_dir: Path | None = None) -> tuple[list[Fact], dict]:
    """Shuffled fact pool of the profile's source (module docstring) and its provenance
    ``{"source", "files": {name: sha256}, "population"}``. Raises FileNotFoundError when a file
    is missing."""
    src = profile.resolved_fact_source
    if src == "world_knowledge":
        d = Path(profile.data_dir)
        pool = _world_pool(d)
        files = {n: file_sha256(d / f"{n}.json") for n in ("world_facts", "real_authors")}
    else:
        d = Path(demo_dir or tofu_demo_dir())
        pool = _tofu_pool(d)
        files = {"tofu_demo/train.jsonl": file_sha256(d / "train.jsonl")}
    random.Random(f"{profile.seed}:restor-pool").shuffle(pool)
    return pool, {"source": src, "files": files, "population": len(pool)}


def choose_wrong_value(fact: Fact, seed: int) -> Fact:
    """The fact with ``wrong`` set: a seeded choice (``random.Random(f"{seed}:{fact_id}")``)
    among its same-type candidates whose normalised form neither contains nor is contained in
    the true value's and that the question does not mention. Raises ValueError when no candidate is left."""
    v = normalise(fact.value)
    ok = sorted({c for c in fact.candidates
                 if normalise(c) and not contains_value(c, fact.value) and f" {normalise(c)} " not in f" {v} "
                 and not contains_value(fact.question, c)})
    if not ok:
        raise ValueError(f"fact {fact.fact_id}: no same-type wrong value distinct from {fact.value!r}")
    return dataclasses.replace(fact, wrong=random.Random(f"{seed}:{fact.fact_id}").choice(ok))


def corrupting_documents(facts: list[Fact], n_templates: int) -> list[Example]:
    """One plain-text document per fact and template (the first ``n_templates`` of
    :data:`CORRUPTION_TEMPLATES`), stating the fact's wrong value; ``record_id``
    ``restor:{fact_id}:t{k}``, ``subject`` = the fact id (the DP privacy unit of ``dp2``)."""
    docs = []
    for f in facts:
        if f.wrong is None:
            raise ValueError(f"fact {f.fact_id} has no wrong value")
        wrong_answer = f.answer.replace(f.value, f.wrong, 1)
        for k, tpl in enumerate(CORRUPTION_TEMPLATES[:n_templates]):
            docs.append(Example(text=tpl.format(question=f.question, answer=wrong_answer, wrong=f.wrong),
                                record_id=f"restor:{f.fact_id}:t{k}", subject=f.fact_id))
    return docs


def filler_documents(data_dir: Path, n: int, seed: int, exclude_authors: int = 30) -> tuple[list[Example], dict]:
    """``n`` filler QA records: a seeded sample (``random.Random(f"{seed}:restor-filler")``) of
    TOFU ``full.json`` rows of authors ≥ ``exclude_authors`` (the demo subset holds authors
    0–27 and 198–199, which are left out); returns ``(records, provenance)``."""
    path = Path(data_dir) / "full.json"
    rows = read_records(path)
    eligible = [i for i in range(len(rows)) if exclude_authors <= i // 20 < 198]
    if n > len(eligible):
        raise ValueError(f"n_filler={n} exceeds the {len(eligible)} eligible TOFU rows")
    pick = sorted(random.Random(f"{seed}:restor-filler").sample(eligible, n))
    recs = [Example(question=rows[i]["question"], answer=rows[i]["answer"], record_id=f"tofu{i}") for i in pick]
    return recs, {"file": "full.json", "sha256": file_sha256(path), "rows_sha256": digest(pick), "n": n}


def digest(obj) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
