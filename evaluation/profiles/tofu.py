"""TOFU evaluation profiles (Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs",
arXiv 2401.06121, §2.2), plus the MUSE-style QA metrics of :func:`evaluate_qa_model`.

Two named profiles (:func:`tofu_profile`), the name travels in every report and certificate:

- ``tofu`` (default): the conventions of the benchmark's code (``locuslab/tofu``
  ``evaluate_util.py``, ``data_module.py``, ``aggregate_eval_stat.py``,
  ``config/eval_everything.yaml``), so that Forget Quality and Model Utility are the numbers
  that published results (TOFU leaderboard, DP2Unlearning, NPO, open-unlearning) quote:
  geometric mean over perturbed answers in the truth ratio; normalised probabilities in the
  real-authors / world-facts choice probability; the answer's EOS token scored (in the loss
  and in |a|); the model family's format (``TOFU_PROMPT_FORMATS``: for ``phi`` the question
  ``"Question: {q}\\n"`` is the prompt and ``"Answer: " + a`` + EOS is scored; generation
  starts from the question alone, as the code splits its input at the answer tag); scored
  sequences cut at 200 tokens; greedy generation up to 200 tokens in all (prompt included),
  no stop-string cut; ROUGE-L recall with ``rouge_score``'s default tokenizer and the
  Porter stemmer; the first 300 rows of each split (``ds_size`` 300).
- ``tofu_paper``: the literal reading of the paper (:mod:`evaluation.profiles.tofu_paper`).

Both report the forget truth ratio as the code does (mean of min(R, 1/R); mean R in
``details``). Formulas: :mod:`evaluation.profiles.tofu_metrics`.

**Deviations** of ``tofu`` from the benchmark's code: logits in fp32 (the code evaluates in
bf16); the generation budget is 200 − the padded width of a batch of rows of similar
length (the code's batches are 30 rows in file order); no ROUGE on the forget split (not part of Model
Utility or Forget Quality).

Files (JSON Lines, read at run time from ``data_dir``): ``{forget_split}_perturbed.json``
(forget01/05/10), ``retain_perturbed.json``, ``real_authors_perturbed.json``,
``world_facts_perturbed.json`` (keys ``question``, ``answer``, ``perturbed_answer`` [list];
forget/retain also ``paraphrased_answer``), and ``holdout01/05/10.json`` (non-members for
the membership-inference AUCs).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unlearning_engine.data import Example

from .._common import encode, max_positions, model_device, pad_token_id
from ..datafiles import read_records, sample_indices, split_record
from ..generation import Generation, greedy_generate_detailed
from ..mia import privleak_metric
from ..report import EvaluationProfile, _degenerate_summary, evaluate_qa_model
from ..rouge import rouge_l_recall
from ..stats import MetricValue
from .tofu_metrics import (
    TOFU_SPLITS,
    TOFU_UTILITY_SPLITS,
    AnswerScore,
    TofuQuestion,
    aggregate_tofu,
)

__all__ = [
    "TOFU_PROFILES",
    "TOFU_PROMPT_FORMATS",
    "TofuProfile",
    "tofu_profile",
    "answer_logprobs",
    "evaluate_tofu",
]

#: Question prompt and scored answer prefix per model family, as the benchmark builds them
#: from ``config/model_config.yaml`` (question_start_tag + q + question_end_tag, then
#: answer_tag + a). Generation starts from the question prompt alone.
TOFU_PROMPT_FORMATS: dict[str, dict[str, str]] = {
    "phi": {"question_template": "Question: {question}\n", "answer_prefix": "Answer: "},
    "llama2-7b": {"question_template": "[INST] {question} [/INST]", "answer_prefix": ""},
}
TOFU_PROMPT_FORMATS["stablelm"] = TOFU_PROMPT_FORMATS["pythia-1.4"] = TOFU_PROMPT_FORMATS["phi"]
TOFU_PROFILES: tuple[str, ...] = ("tofu", "tofu_paper")
_FILES = {
    "retain": "retain_perturbed.json",
    "real_authors": "real_authors_perturbed.json",
    "world_facts": "world_facts_perturbed.json",
}


@dataclass(frozen=True)
class TofuProfile:
    """Pinned settings of a TOFU profile (DESIGN §7); the defaults are the ``tofu`` profile.

    ``limit``: at most this many questions per split; ``row_selection`` ``"first"`` (the
    benchmark's ``ds_size``) or ``"seeded"`` (:func:`evaluation.datafiles.sample_indices`).
    ``question_template`` is the prompt (not scored); ``answer_prefix`` + the answer (+ EOS
    when ``score_eos``) is scored; sequences longer than ``scoring_max_length`` tokens are
    cut at the end. Generation: ``generation_max_new_tokens`` when set, else up to
    ``generation_max_length`` tokens in all (prompt included).
    ``holdout_split`` defaults to the forget split's size (forget05 → holdout05).
    """

    name: str = "tofu"
    revision: int = 2
    benchmark: str = "TOFU (arXiv 2401.06121), conventions of the code locuslab/tofu"
    data_dir: str | None = None
    forget_split: str = "forget01"
    holdout_split: str | None = None
    limit: int | None = 300
    row_selection: str = "first"
    seed: int = 0
    prompt_family: str | None = "phi"
    question_template: str = TOFU_PROMPT_FORMATS["phi"]["question_template"]
    answer_prefix: str = TOFU_PROMPT_FORMATS["phi"]["answer_prefix"]
    score_eos: bool = True
    scoring_max_length: int | None = 200
    truth_ratio_mean: str = "geometric"
    choice_probability: str = "normalised"
    truth_ratio_base: dict = field(default_factory=lambda: {
        "forget": "paraphrased_answer", "retain": "paraphrased_answer",
        "real_authors": "answer", "world_facts": "answer"})
    rouge_tokenizer: str = "rouge_score-default"
    rouge_use_stemmer: bool = True
    generation_max_length: int | None = 200
    generation_max_new_tokens: int | None = None
    generation_stop_strings: tuple[str, ...] = ()
    verbmem_max_new_tokens: int = 128
    knowmem_max_new_tokens: int = 32
    forget_quality_min_size: int = 5
    mia_min_size: int = 5
    privleak_band: float = 5.0
    generation_batch_size: int = 16
    scoring_batch_size: int = 16
    bootstrap_resamples: int = 1000
    ci_level: float = 0.95
    ci_method: str = "percentile bootstrap"
    dtype: str = "fp32"
    context_length: int | None = None
    splits: dict = field(default_factory=dict)

    def resolved_holdout(self) -> str:
        """``holdout_split`` or ``"holdout" + forget_split[-2:]``."""
        return self.holdout_split or "holdout" + self.forget_split[-2:]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def tofu_profile(name: str = "tofu", **overrides) -> TofuProfile:
    """The named profile (``"tofu"`` or ``"tofu_paper"``) with ``overrides`` applied.
    ``prompt_family=`` (a key of :data:`TOFU_PROMPT_FORMATS`) also sets the two templates
    unless they are given. Raises ``ValueError`` for an unknown name or family and
    ``TypeError`` for an unknown field."""
    if name == "tofu":
        base = TofuProfile()
    elif name == "tofu_paper":
        from .tofu_paper import TOFU_PAPER

        base = TOFU_PAPER
    else:
        raise ValueError(f"TOFU profile must be one of {TOFU_PROFILES}, got {name!r}")
    fam = overrides.get("prompt_family")
    if fam is not None:
        if fam not in TOFU_PROMPT_FORMATS:
            raise ValueError(f"prompt_family must be one of {sorted(TOFU_PROMPT_FORMATS)}")
        overrides = {**TOFU_PROMPT_FORMATS[fam], **overrides}
    return dataclasses.replace(base, **overrides)


# --------------------------------------------------------------------------- scoring


def _encode_pair(tokenizer, prompt: str, answer: str, limit: int | None, eos: bool,
                 max_length: int | None):
    p_ids = encode(tokenizer, prompt)
    if not p_ids:
        raise ValueError("the prompt encodes to zero tokens; nothing to condition on")
    full = encode(tokenizer, prompt + answer)
    if full[: len(p_ids)] == p_ids and len(full) > len(p_ids):
        a_ids = full[len(p_ids):]
    else:  # no prefix property (e.g. "Answer: " + "The" merges the space): concatenate
        a_ids = encode(tokenizer, answer, add_special_tokens=False)
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    while a_ids and a_ids[-1] in specials:
        a_ids = a_ids[:-1]
    if eos:
        eos_id = getattr(tokenizer, "eos_token_id", None)
        if eos_id is None:
            raise ValueError("score_eos needs a tokenizer with an EOS token")
        a_ids = a_ids + [int(eos_id)]
    truncated = False
    if max_length is not None and len(p_ids) + len(a_ids) > max_length:
        truncated = True  # the benchmark cuts the tokenized pair at its end
        a_ids = a_ids[: max(0, max_length - len(p_ids))]
    if limit is not None and len(p_ids) + len(a_ids) > limit:
        truncated = True
        if len(a_ids) >= limit:
            a_ids = a_ids[: limit - 1]
        p_ids = p_ids[len(p_ids) - (limit - len(a_ids)):]
    return p_ids, a_ids, truncated


@torch.inference_mode()
def answer_logprobs(
    model, tokenizer, prompts: Sequence[str], answers: Sequence[str], batch_size: int = 16,
    *, score_eos: bool = False, max_length: int | None = None,
) -> list[AnswerScore]:
    """Σ log P(a_t | prompt, a_<t) over the answer tokens of each (prompt, answer) pair.

    Tokenization: prompt ids = ``tokenizer(prompt)`` (with its special tokens, e.g. BOS);
    answer ids = the tokens of ``tokenizer(prompt + answer)`` after that prefix when the
    prompt ids are a prefix of them, else ``tokenizer(answer)`` without special tokens
    appended to the prompt ids (the rule of ``unlearning_engine.training.encode_example``);
    trailing special tokens are dropped, then with ``score_eos`` one EOS token is appended
    and scored (the TOFU code's labels), so |a| = answer tokens (+ 1). ``max_length``: the
    pair is cut to that many tokens at its end (the TOFU code's ``max_length`` 200). Pairs
    longer than the context are cut, the prompt from the left (flagged ``truncated``).
    Batches are right-padded, padding is masked by the attention mask, log-softmax on fp32
    logits. Returns one :class:`AnswerScore` per pair (``n_tokens`` 0 when nothing of the
    answer is left). Raises ``ValueError`` on length mismatch, a bad ``batch_size``, a
    prompt that encodes to no token, or ``score_eos`` without an EOS token.
    """
    if len(prompts) != len(answers):
        raise ValueError("prompts and answers must have the same length")
    if batch_size <= 0:
        raise ValueError("batch_size must be > 0")
    if not prompts:
        return []
    model.eval()
    device = model_device(model)
    limit = max_positions(model)
    enc = [_encode_pair(tokenizer, p, a, limit, score_eos, max_length)
           for p, a in zip(prompts, answers, strict=True)]
    pad_id = pad_token_id(tokenizer)
    order = sorted(range(len(enc)), key=lambda i: len(enc[i][0]) + len(enc[i][1]))
    out: list[AnswerScore | None] = [None] * len(enc)
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        seqs = [enc[i][0] + enc[i][1] for i in idx]
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            input_ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            attn[r, : len(s)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attn.to(device)).logits
        logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
        tok_lp = logp.gather(-1, input_ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
        tok_lp = tok_lp.double().cpu().numpy()
        for r, i in enumerate(idx):
            p_ids, a_ids, trunc = enc[i]
            lo = len(p_ids) - 1  # logits at position t-1 predict token t
            out[i] = AnswerScore(float(tok_lp[r, lo: lo + len(a_ids)].sum()), len(a_ids), trunc)
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- profile


def _load(data_dir: Path, fname: str, key: str, profile: TofuProfile):
    path = data_dir / fname
    rows = read_records(path)
    if profile.row_selection == "first":
        idx = list(range(len(rows) if profile.limit is None else min(profile.limit, len(rows))))
    elif profile.row_selection == "seeded":
        idx = sample_indices(len(rows), profile.limit, profile.seed, key)
    else:
        raise ValueError(f"row_selection must be 'first' or 'seeded', got {profile.row_selection!r}")
    return [rows[i] for i in idx], idx, split_record(path, len(rows), idx)


def _split_questions(model, tokenizer, rows, base_key: str, profile: TofuProfile):
    """``(questions, kept_rows, n_invalid, n_truncated)`` of one split: the scores of the
    answer, ã and the perturbed answers of every well-formed row."""
    prompts, answers, owner, kept = [], [], [], []
    pre = profile.answer_prefix
    for r in rows:
        pert = r.get("perturbed_answer")
        if isinstance(pert, str):
            pert = [pert]
        ok = (isinstance(r.get("question"), str) and isinstance(r.get("answer"), str)
              and isinstance(r.get(base_key), str) and isinstance(pert, list) and pert
              and all(isinstance(p, str) for p in pert))
        if not ok:
            continue
        kept.append(r)
        prompt = profile.question_template.format(question=r["question"])
        for kind, ans in [("answer", r["answer"]), ("base", r[base_key])] + [
                ("pert", p) for p in pert]:
            prompts.append(prompt)
            answers.append(pre + ans)
            owner.append((len(kept) - 1, kind))
    scores = answer_logprobs(model, tokenizer, prompts, answers,
                             batch_size=profile.scoring_batch_size, score_eos=profile.score_eos,
                             max_length=profile.scoring_max_length)
    per = [{"answer": None, "base": None, "pert": []} for _ in kept]
    for (j, kind), s in zip(owner, scores, strict=True):
        if kind == "pert":
            per[j]["pert"].append(s)
        else:
            per[j][kind] = s
    qs = [TofuQuestion(p["answer"], p["base"], tuple(p["pert"])) for p in per]
    return qs, kept, len(rows) - len(kept), sum(s.truncated for s in scores)


def _generate(model, tokenizer, prompts: list[str], profile: TofuProfile):
    """Greedy answers of ``prompts`` (input order). With ``generation_max_new_tokens``
    every row gets that many new tokens; else, as ``generate(max_length=200)`` on a
    left-padded batch in the TOFU code, a batch gets ``generation_max_length`` (at most the
    context) minus its padded width; batches are rows of similar length."""
    bs = profile.generation_batch_size
    if profile.generation_max_new_tokens is not None:
        return greedy_generate_detailed(model, tokenizer, prompts,
                                        profile.generation_max_new_tokens, batch_size=bs,
                                        stop_strings=profile.generation_stop_strings)
    if profile.generation_max_length is None:
        raise ValueError("set generation_max_new_tokens or generation_max_length")
    ctx = max_positions(model)
    total = profile.generation_max_length if ctx is None else min(
        profile.generation_max_length, ctx)
    lengths = [len(encode(tokenizer, p)) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    out: list[Generation | None] = [None] * len(prompts)
    for start in range(0, len(order), bs):
        idx = order[start: start + bs]
        budget = total - max(lengths[i] for i in idx)
        if budget <= 0:
            gens = [Generation(text="", token_ids=(), stopped_by="length") for _ in idx]
        else:
            gens = greedy_generate_detailed(model, tokenizer, [prompts[i] for i in idx], budget,
                                            batch_size=len(idx),
                                            stop_strings=profile.generation_stop_strings)
        for i, g in zip(idx, gens, strict=True):
            out[i] = g
    return out


def _utility_rouge(model, tokenizer, questions, kept, profile: TofuProfile):
    """Greedy answers of one utility split and their ROUGE-L recall; ``(questions with
    rouge_recall, generations)``."""
    prompts = [profile.question_template.format(question=r["question"]) for r in kept]
    if not prompts:
        return questions, []
    gens = _generate(model, tokenizer, prompts, profile)
    out = [dataclasses.replace(q, rouge_recall=rouge_l_recall(
               g.text.strip(), r["answer"], use_stemmer=profile.rouge_use_stemmer,
               tokenizer=profile.rouge_tokenizer))
           for q, g, r in zip(questions, gens, kept, strict=True)]
    return out, gens


def _qa_report(model, tokenizer, rows, f_idx, h_rows, h_idx, profile: TofuProfile):
    def examples(rs, idx, prefix):
        return [Example(question=r["question"], answer=r["answer"], record_id=f"{prefix}:{i}")
                for r, i in zip(rs, idx, strict=True)
                if isinstance(r.get("question"), str) and isinstance(r.get("answer"), str)]

    qa_profile = EvaluationProfile(
        name="tofu-qa-v1",
        verbmem_max_new_tokens=profile.verbmem_max_new_tokens,
        knowmem_max_new_tokens=profile.knowmem_max_new_tokens,
        max_retain_examples=None,
        generation_batch_size=profile.generation_batch_size,
        scoring_batch_size=profile.scoring_batch_size,
        mia_min_size=profile.mia_min_size,
        seed=profile.seed,
        bootstrap_resamples=profile.bootstrap_resamples,
    )
    return evaluate_qa_model(
        model, tokenizer,
        forget=examples(rows["forget"], f_idx, profile.forget_split),
        retain=examples(rows["retain"], range(len(rows["retain"])), "retain_perturbed"),
        holdout=examples(h_rows, h_idx, profile.resolved_holdout()),
        profile=qa_profile,
    )


def evaluate_tofu(
    model,
    tokenizer,
    data_dir: str | Path,
    *,
    profile: TofuProfile | None = None,
    reference_auc: float | None = None,
    reference_type: str | None = None,
    retrained_truth_ratios: Sequence[float] | None = None,
) -> dict:
    """Evaluate one causal LM with a TOFU profile (arXiv 2401.06121 §2.2, DESIGN §7).

    Args:
        model, tokenizer: a ``transformers`` causal LM (cast to fp32, ``eval()``).
        data_dir: directory with the TOFU files (see the module docstring).
        profile: :class:`TofuProfile` (default: the ``tofu`` profile, :func:`tofu_profile`).
        reference_auc / reference_type: PrivLeak reference (see
            :func:`evaluation.mia.privleak_metric`); ``None`` → 0.5 flagged ``ideal``.
        retrained_truth_ratios: the retrained model's forget-set R values
            (``report["tofu"]["forget_truth_ratios"]`` of a retrained model evaluated with
            the same profile); without them Forget Quality is ``undefined``.

    Returns the :func:`evaluate_qa_model` layout (forget = the forget split's questions,
    retain = retain_perturbed, holdout = holdoutNN) extended with::

        "metrics": {... QA metrics ..., "privleak", "truth_ratio_<split>",
                    "probability_<split>" (split: forget, retain, real_authors,
                    world_facts), "rouge_recall_<utility split>", "model_utility",
                    "forget_quality"},
        "privleak": {...}, "tofu": {"forget_truth_ratios": [...], "utility_components":
                    {name: mean}, "excluded": {...}, "truncated_pairs": {...}},
        "profile": TofuProfile.to_dict() + {"qa": EvaluationProfile.to_dict()}

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for bad settings.
    """
    t0 = time.perf_counter()
    profile = profile or TofuProfile()
    data_dir = Path(data_dir)
    if any(p.dtype != torch.float32 for p in model.parameters()):
        model.float()
    model.eval()
    splits: dict[str, dict] = {}
    rows: dict[str, list] = {}
    rows["forget"], f_idx, splits["forget"] = _load(
        data_dir, f"{profile.forget_split}_perturbed.json", "forget", profile)
    for name, fname in _FILES.items():
        rows[name], _, splits[name] = _load(data_dir, fname, name, profile)
    h_rows, h_idx, splits["holdout"] = _load(
        data_dir, f"{profile.resolved_holdout()}.json", "holdout", profile)
    profile = dataclasses.replace(profile, data_dir=str(data_dir), splits=splits,
                                  context_length=max_positions(model))
    report = _qa_report(model, tokenizer, rows, f_idx, h_rows, h_idx, profile)
    t1 = time.perf_counter()
    metrics = {k: MetricValue.from_dict(v) for k, v in report["metrics"].items()}
    metrics["privleak"], pl_block = privleak_metric(
        metrics["mink_auc"], reference_auc, reference_type, band=profile.privleak_band)

    questions, kept, invalid, truncated = {}, {}, {}, {}
    for split in TOFU_SPLITS:
        questions[split], kept[split], invalid[split], truncated[split] = _split_questions(
            model, tokenizer, rows[split], profile.truth_ratio_base.get(split, "answer"), profile)
    t_gen0 = time.perf_counter()
    gens_all = []
    for split in TOFU_UTILITY_SPLITS:
        questions[split], gens = _utility_rouge(model, tokenizer, questions[split], kept[split],
                                                profile)
        gens_all += gens
    t_gen = time.perf_counter() - t_gen0
    agg = aggregate_tofu(
        questions, truth_ratio_mean=profile.truth_ratio_mean,
        choice_probability_form=profile.choice_probability,
        retrained_truth_ratios=retrained_truth_ratios,
        forget_quality_min_size=profile.forget_quality_min_size,
        n_bootstrap=profile.bootstrap_resamples, seed=profile.seed)
    metrics.update(agg["metrics"])
    degenerate = dict(report["degenerate"])
    degenerate["utility_rouge"] = _degenerate_summary(gens_all, 4)
    return {
        "profile": {**profile.to_dict(), "qa": report["profile"]},
        "metrics": {k: v.to_dict() for k, v in metrics.items()},
        "privleak": pl_block,
        "tofu": {
            "forget_truth_ratios": [float(x) for x in agg["forget_truth_ratios"]],
            "utility_components": (metrics["model_utility"].details or {}).get("components", {}),
            "excluded": {s: invalid[s] + agg["excluded"][s] for s in TOFU_SPLITS},
            "truncated_pairs": truncated,
        },
        "degenerate": degenerate,
        "timing": {
            **report["timing"],
            "tofu_scoring_seconds": round(t_gen0 - t1, 3),
            "tofu_generation_seconds": round(t_gen, 3),
            "total_seconds": round(time.perf_counter() - t0, 3),
        },
    }
