"""The ``tofu_paper`` profile: the literal reading of the TOFU paper (arXiv 2401.06121
§2.2) instead of the benchmark code's conventions (the ``tofu`` profile,
:mod:`evaluation.profiles.tofu`). Use it to report what the paper's formulas give; quote
``tofu`` next to published numbers, which come from the code.

Where it departs from ``tofu`` (each is a place where the paper's text and the code differ,
or where the project kept its own QA conventions):

- truth ratio: arithmetic mean (1/m) Σ_j p̄(â_j|q) over the perturbed answers (the paper's
  formula; the code uses the geometric mean);
- real authors / world facts probability: P(a|q) / Σ P(·|q) with unnormalised sequence
  probabilities, as the paper's text states (the code normalises by length; the
  benchmark repository's issue 26 discusses the difference);
- |a| counts the answer tokens only: no EOS token is scored (the code scores it);
- prompt = the project's training template ``"Question: {q}\\nAnswer: "`` (also for
  generation), the answer alone is scored (the code scores ``"Answer: " + a``);
- no 200-token cut of scored pairs; generation: 128 new tokens, cut at the QA stop strings
  (``\\n\\n``, ``\\nQuestion``, ``Question:``);
- ROUGE-L recall with the project's Unicode tokenizer, no stemming (the code: the default
  ``rouge_score`` tokenizer with the Porter stemmer);
- all rows of each split, or a seeded sample of ``limit`` rows (the code: the first 300).

The forget truth ratio's headline is the code's mean of min(R, 1/R) in both profiles (mean
R in ``details``), so that "Truth Ratio (forget)" means what TOFU tables mean.
"""

from __future__ import annotations

from unlearning_engine.data import QA_PROMPT_TEMPLATE

from ..generation import KNOWMEM_STOP_STRINGS
from .tofu import TofuProfile

__all__ = ["TOFU_PAPER"]

TOFU_PAPER = TofuProfile(
    name="tofu_paper",
    benchmark="TOFU (arXiv 2401.06121), literal reading of the paper §2.2",
    limit=None,
    row_selection="seeded",
    prompt_family=None,
    question_template=QA_PROMPT_TEMPLATE,
    answer_prefix="",
    score_eos=False,
    scoring_max_length=None,
    truth_ratio_mean="arithmetic",
    choice_probability="unnormalised",
    rouge_tokenizer="unicode-v1",
    rouge_use_stemmer=False,
    generation_max_length=None,
    generation_max_new_tokens=128,
    generation_stop_strings=KNOWMEM_STOP_STRINGS,
)
