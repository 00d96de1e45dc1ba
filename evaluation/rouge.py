"""ROUGE-L F1 and recall through ``rouge_score``, with a named tokenizer option.

Source: Lin (2004), "ROUGE: A Package for Automatic Evaluation of Summaries"; the
implementation is Google's ``rouge_score`` package (``RougeScorer(["rougeL"])``), which
is what MUSE (arXiv 2407.06460, §3, VerbMem / KnowMem) and TOFU (arXiv 2401.06121, §2.5)
use. ROUGE-L F1 = 2·P·R / (P + R) with P = LCS/|prediction|, R = LCS/|reference|,
LCS = length of the longest common token subsequence.

Tokenizer options (:data:`ROUGE_TOKENIZERS`; the chosen name and its description are pinned
into the evaluation profile, hence into the certificate):

- ``"rouge_score-default"``: ``rouge_score``'s own tokenizer (lower-case, every character
  outside ``[a-z0-9]`` becomes a separator), exactly what MUSE's published numbers use; the
  ``muse`` profile's default. It splits non-ASCII letters out of words ("Paraç" → "para") and
  maps wholly non-Latin text (Devanagari, Cyrillic, CJK) to no tokens (score 0).
- ``"unicode-v1"``: :class:`UnicodeTokenizer`, for non-Latin corpora (**Deviation** from the
  benchmark, named in the profile when used).

No stemming (``use_stemmer=False``) in either case.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from rouge_score import rouge_scorer

__all__ = [
    "UnicodeTokenizer",
    "rouge_l_f1",
    "rouge_l_recall",
    "rouge_settings",
    "ROUGE_TOKENIZERS",
    "TOKENIZER_DESCRIPTION",
    "ROUGE_TOKENIZERS",
    "DEFAULT_ROUGE_TOKENIZER",
    "UNICODE_ROUGE_TOKENIZER",
]

TOKENIZER_DESCRIPTION = (
    "unicode-v1: NFC normalisation, lower-case (str.lower), tokens = maximal runs of "
    "characters of Unicode categories L*, M*, N*; everything else separates tokens"
)

DEFAULT_ROUGE_TOKENIZER = "rouge_score-default"
UNICODE_ROUGE_TOKENIZER = "unicode-v1"
#: name → description of each tokenizer option.
ROUGE_TOKENIZERS: dict[str, str] = {
    DEFAULT_ROUGE_TOKENIZER: (
        "rouge_score default (rouge_score.tokenize: lower-case, non-[a-z0-9] characters separate "
        "tokens), as in the MUSE benchmark code"),
    UNICODE_ROUGE_TOKENIZER: TOKENIZER_DESCRIPTION,
}


def _check_tokenizer(name: str) -> str:
    if name not in ROUGE_TOKENIZERS:
        raise ValueError(f"rouge tokenizer must be one of {sorted(ROUGE_TOKENIZERS)}, got {name!r}")
    return name


def _is_word_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in ("L", "M", "N")


class UnicodeTokenizer:
    """Tokenizer object for ``rouge_score`` (it needs a ``tokenize(text) -> list[str]``).

    A token is a maximal run of letters (``L*``), combining marks (``M*``, needed for
    Devanagari vowel signs and viramas, which ``str.isalnum`` and ``re``'s ``\\w`` reject)
    and digits/numbers (``N*``), after NFC normalisation and lower-casing. Punctuation,
    symbols and whitespace separate tokens and are dropped, like the default tokenizer.
    Scripts written without spaces (CJK) become one token per run; that is a known
    limitation, acceptable for the corpora in DESIGN §10.
    """

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into lower-cased word tokens (see the class docstring)."""
        if not text:
            return []
        text = unicodedata.normalize("NFC", text).lower()
        tokens: list[str] = []
        cur: list[str] = []
        for ch in text:
            if _is_word_char(ch):
                cur.append(ch)
            elif cur:
                tokens.append("".join(cur))
                cur = []
        if cur:
            tokens.append("".join(cur))
        return tokens


@lru_cache(maxsize=8)
def _scorer(tokenizer: str = UNICODE_ROUGE_TOKENIZER, use_stemmer: bool = False) -> rouge_scorer.RougeScorer:
    tok = UnicodeTokenizer() if _check_tokenizer(tokenizer) == UNICODE_ROUGE_TOKENIZER else None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer, tokenizer=tok)


def rouge_l_f1(prediction: str, reference: str, tokenizer: str = UNICODE_ROUGE_TOKENIZER) -> float:
    """ROUGE-L F1 of ``prediction`` against ``reference``, in [0, 1].

    Formula: F1 = 2·P·R/(P+R), P = LCS/len(pred tokens), R = LCS/len(ref tokens)
    (Lin 2004; as used by MUSE arXiv 2407.06460 §3 and TOFU arXiv 2401.06121 §2.5),
    computed by ``rouge_score`` with the ``tokenizer`` option (:data:`ROUGE_TOKENIZERS`) and no
    stemming. An empty (or punctuation-only) prediction or reference scores 0.0.

    Raises ``TypeError`` if either argument is not a ``str``, ``ValueError`` for an unknown
    tokenizer name.
    """
    if not isinstance(prediction, str) or not isinstance(reference, str):
        raise TypeError("rouge_l_f1 expects two str arguments")
    # rouge_score.score(target, prediction)
    return float(_scorer(tokenizer).score(reference, prediction)["rougeL"].fmeasure)


def rouge_l_recall(prediction: str, reference: str, tokenizer: str = UNICODE_ROUGE_TOKENIZER, *,
                   use_stemmer: bool = False) -> float:
    """ROUGE-L recall R = LCS/len(reference tokens) of ``prediction``, in [0, 1].

    The "ROUGE" of TOFU (arXiv 2401.06121 §2.2.1, Model Utility): ROUGE-L recall of the
    greedy answer against the ground-truth answer. Defaults: the scorer of
    :func:`rouge_l_f1` (:class:`UnicodeTokenizer`, no stemming). The TOFU code
    (``evaluate_util.eval_rouge_recall``) uses ``rouge_score``'s default tokenizer with the
    Porter stemmer: ``tokenizer="rouge_score-default", use_stemmer=True`` (the ``tofu`` profile).
    An empty reference scores 0.0. Raises ``TypeError`` for non-``str`` arguments and
    ``ValueError`` for an unknown ``tokenizer``.
    """
    if not isinstance(prediction, str) or not isinstance(reference, str):
        raise TypeError("rouge_l_recall expects two str arguments")
    return float(_scorer(tokenizer, bool(use_stemmer)).score(reference, prediction)["rougeL"].recall)


def rouge_settings(tokenizer: str = UNICODE_ROUGE_TOKENIZER) -> dict:
    """The ROUGE settings pinned into the evaluation profile (DESIGN §7): implementation,
    version, metric, ``tokenizer_name`` (a key of :data:`ROUGE_TOKENIZERS`) and its
    description. Raises ``ValueError`` for an unknown tokenizer name."""
    import importlib.metadata as md

    try:
        version = md.version("rouge-score")
    except md.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    return {
        "implementation": "rouge_score",
        "version": version,
        "metric": "rougeL",
        "statistic": "fmeasure",
        "use_stemmer": False,
        "tokenizer_name": _check_tokenizer(tokenizer),
        "tokenizer": ROUGE_TOKENIZERS[tokenizer],
    }
