"""ROUGE-L F1 with a Unicode-aware tokenizer.

Source: Lin (2004), "ROUGE: A Package for Automatic Evaluation of Summaries"; the
implementation is Google's ``rouge_score`` package (``RougeScorer(["rougeL"])``), which
is what MUSE (arXiv 2407.06460, §3, VerbMem / KnowMem) and TOFU (arXiv 2401.06121, §2.5)
use. ROUGE-L F1 = 2·P·R / (P + R) with P = LCS/|prediction|, R = LCS/|reference|,
LCS = length of the longest common token subsequence.

**Deviation** (DESIGN §7): ``rouge_score``'s default tokenizer keeps only ``[a-z0-9]`` and
therefore maps every non-Latin text (Devanagari, Cyrillic, CJK, ...) to an empty token
list, which scores 0 even for identical strings. We plug in :class:`UnicodeTokenizer`
instead. No stemming (``use_stemmer=False``).
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
]

TOKENIZER_DESCRIPTION = (
    "unicode-v1: NFC normalisation, lower-case (str.lower), tokens = maximal runs of "
    "characters of Unicode categories L*, M*, N*; everything else separates tokens"
)


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


#: ``tokenizer`` values of :func:`rouge_l_recall`: this module's :class:`UnicodeTokenizer`
#: or ``rouge_score``'s own default tokenizer (lower-case, ``[a-z0-9]+`` runs; what the TOFU
#: code uses, with ``use_stemmer=True``).
ROUGE_TOKENIZERS = ("unicode", "default")


@lru_cache(maxsize=4)
def _scorer(use_stemmer: bool = False, tokenizer: str = "unicode") -> rouge_scorer.RougeScorer:
    if tokenizer not in ROUGE_TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {ROUGE_TOKENIZERS}, got {tokenizer!r}")
    tok = UnicodeTokenizer() if tokenizer == "unicode" else None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer, tokenizer=tok)


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of ``prediction`` against ``reference``, in [0, 1].

    Formula: F1 = 2·P·R/(P+R), P = LCS/len(pred tokens), R = LCS/len(ref tokens)
    (Lin 2004; as used by MUSE arXiv 2407.06460 §3 and TOFU arXiv 2401.06121 §2.5),
    computed by ``rouge_score`` with :class:`UnicodeTokenizer` and no stemming.
    An empty (or punctuation-only) prediction or reference scores 0.0.

    Raises ``TypeError`` if either argument is not a ``str``.
    """
    if not isinstance(prediction, str) or not isinstance(reference, str):
        raise TypeError("rouge_l_f1 expects two str arguments")
    # rouge_score.score(target, prediction)
    return float(_scorer().score(reference, prediction)["rougeL"].fmeasure)


def rouge_l_recall(prediction: str, reference: str, *, use_stemmer: bool = False,
                   tokenizer: str = "unicode") -> float:
    """ROUGE-L recall R = LCS/len(reference tokens) of ``prediction``, in [0, 1].

    The "ROUGE" of TOFU (arXiv 2401.06121 §2.2.1, Model Utility): ROUGE-L recall of the
    greedy answer against the ground-truth answer. Defaults: the scorer of
    :func:`rouge_l_f1` (:class:`UnicodeTokenizer`, no stemming). The TOFU code
    (``evaluate_util.eval_rouge_recall``) uses ``rouge_score``'s default tokenizer with the
    Porter stemmer: ``use_stemmer=True, tokenizer="default"`` (the ``tofu`` profile).
    An empty reference scores 0.0. Raises ``TypeError`` for non-``str`` arguments and
    ``ValueError`` for an unknown ``tokenizer``.
    """
    if not isinstance(prediction, str) or not isinstance(reference, str):
        raise TypeError("rouge_l_recall expects two str arguments")
    scorer = _scorer(bool(use_stemmer), tokenizer)
    return float(scorer.score(reference, prediction)["rougeL"].recall)


def rouge_settings() -> dict:
    """The ROUGE settings pinned into the evaluation profile (DESIGN §7)."""
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
        "tokenizer": TOKENIZER_DESCRIPTION,
    }
