"""Check the ``tofu`` profile against the TOFU benchmark's published per-row logs.

The TOFU authors publish, per model, the per-row evaluation logs that their leaderboard
aggregates (GitHub ``locuslab/tofu``, ``data/<model>/eval_results/ds_size300/
eval_log_aggregated.json``; e.g. ``ft_epoch5_lr1e-05_llama2-7b_full_wd0.01`` = the fine-tuned
Llama-2-7B and ``ft_epoch5_lr1e-05_llama2-7b_retain90_wd0.01`` = its retain90 model). This
script reads two such files that the user provides locally (nothing is downloaded, nothing
of them is copied), turns their per-row quantities into :class:`TofuQuestion` s and runs the
project's aggregation (:func:`evaluation.profiles.tofu_metrics.aggregate_tofu`) with the
settings of the ``tofu`` profile (and, for contrast, ``tofu_paper``), then compares Model
Utility and Forget Quality with the published figures.

Per split (``eval_log.json`` = retain, ``eval_real_author_wo_options.json``,
``eval_real_world_wo_options.json``, ``eval_log_forget.json``), the values used are
``avg_gt_loss``, ``avg_paraphrased_loss``, ``average_perturb_loss`` (per-token mean NLL of
the answer, of ã and of each perturbed answer; EOS included) and ``rougeL_recall``;
``--recompute-rouge`` recomputes ROUGE-L recall from ``generated_text`` with the profile's
ROUGE settings and reports the largest difference. A metric may be ``{row: value}`` (the
benchmark's layout) or a list. With ``gt_loss``/``num_token_gt`` and ``perturb_loss``/
``num_token_perturb`` present, sums and token counts are used (needed for ``tofu_paper``'s
unnormalised probability), else the means.

Default expectations: the TOFU leaderboard (``notebook/leaderboard/llama-10p/llama-10p.csv``,
row "Finetune Model", LLaMA 2-7B, lr 1e-05, wd 0.01): Model Utility 0.6226773637427153,
Forget Quality 1.834066410994743e-21 (vs the retain90 model). Done when (issue 24): Model
Utility within 0.001 and log10 Forget Quality within 0.5 %.

    python bench/tofu_published_logs.py --unlearned FULL/eval_log_aggregated.json \\
        --retrained RETAIN90/eval_log_aggregated.json [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evaluation.profiles.tofu import tofu_profile  # noqa: E402
from evaluation.profiles.tofu_metrics import AnswerScore, TofuQuestion, aggregate_tofu  # noqa: E402
from evaluation.rouge import rouge_l_recall  # noqa: E402

SPLIT_KEYS = {"retain": "eval_log.json", "real_authors": "eval_real_author_wo_options.json",
              "world_facts": "eval_real_world_wo_options.json", "forget": "eval_log_forget.json"}
PUBLISHED = {"model_utility": 0.6226773637427153, "forget_quality": 1.834066410994743e-21,
             "probability_retain": 0.9895272273969072, "rouge_recall_retain": 0.9856545937933034,
             "truth_ratio_retain": 0.47469858801063763,
             "probability_real_authors": 0.45548207783762884,
             "rouge_recall_real_authors": 0.9329999999999999,
             "truth_ratio_real_authors": 0.5962289157077106,
             "probability_world_facts": 0.41856180755948974,
             "rouge_recall_world_facts": 0.8824786324786325,
             "truth_ratio_world_facts": 0.5390328416393139,
             "probability_forget": 0.9909385566403213, "truth_ratio_forget": 0.5159854212808592}
SOURCE = ("locuslab/tofu notebook/leaderboard/llama-10p/llama-10p.csv (commit "
          "9db2661039d9d48fd1b3ea3573631bdf26ff4759), row 'Finetune Model'")


def _rows(metric) -> list:
    """``{row: v}`` (keys sorted as integers) or a list → list of values."""
    if isinstance(metric, dict):
        return [metric[k] for k in sorted(metric, key=int)]
    return list(metric)


def _scores(block: dict, mean_key: str, sum_key: str, count_key: str) -> list:
    means = _rows(block[mean_key])
    if sum_key in block and count_key in block:
        sums, counts = _rows(block[sum_key]), _rows(block[count_key])
        if isinstance(means[0], list):
            return [[AnswerScore(-s, int(c)) for s, c in zip(ss, cc, strict=True)]
                    for ss, cc in zip(sums, counts, strict=True)]
        return [AnswerScore(-s, int(c)) for s, c in zip(sums, counts, strict=True)]
    if isinstance(means[0], list):
        return [[AnswerScore(-m, 1) for m in ms] for ms in means]
    return [AnswerScore(-m, 1) for m in means]


def questions_of(block: dict, profile, recompute_rouge: bool) -> tuple[list, float | None]:
    """TofuQuestions of one split's log block and the largest |recomputed − logged| ROUGE.
    A block without ``avg_gt_loss`` (an extract with the forget split's truth-ratio inputs
    only) uses ã in its place: its probability is then not the benchmark's and is not
    compared."""
    base = _scores(block, "avg_paraphrased_loss", "paraphrased_loss", "num_token_paraphrased")
    ans = _scores(block, "avg_gt_loss", "gt_loss", "num_token_gt") if "avg_gt_loss" in block \
        else base
    pert = _scores(block, "average_perturb_loss", "perturb_loss", "num_token_perturb")
    rouge = _rows(block["rougeL_recall"]) if "rougeL_recall" in block else [None] * len(ans)
    diff = None
    if recompute_rouge and "generated_text" in block:
        new = [rouge_l_recall(gen, gt, use_stemmer=profile.rouge_use_stemmer,
                              tokenizer=profile.rouge_tokenizer)
               for _, gen, gt in _rows(block["generated_text"])]
        if rouge[0] is not None:
            diff = max(abs(a - b) for a, b in zip(new, rouge, strict=True))
        rouge = new
    return [TofuQuestion(a, b, tuple(p), r)
            for a, b, p, r in zip(ans, base, pert, rouge, strict=True)], diff


def aggregate_logs(log: dict, profile, retrained_r=None, recompute_rouge=False) -> dict:
    """``aggregate_tofu`` of one model's aggregated log with ``profile``'s settings."""
    splits, diffs, no_prob = {}, {}, []
    for split, key in SPLIT_KEYS.items():
        if key in log:
            splits[split], diffs[split] = questions_of(log[key], profile, recompute_rouge)
            if "avg_gt_loss" not in log[key]:
                no_prob.append(f"probability_{split}")
    agg = aggregate_tofu(splits, truth_ratio_mean=profile.truth_ratio_mean,
                         choice_probability_form=profile.choice_probability,
                         retrained_truth_ratios=retrained_r, n_bootstrap=0)
    agg["rouge_max_abs_diff"] = diffs
    agg["not_in_log"] = no_prob
    return agg


def compare(unlearned: dict, retrained: dict, expected: dict, recompute_rouge=False) -> dict:
    """Per profile: the metrics, their published values and the differences."""
    out = {}
    for name in ("tofu", "tofu_paper"):
        prof = tofu_profile(name)
        ref = aggregate_logs(retrained, prof)
        agg = aggregate_logs(unlearned, prof, ref["forget_truth_ratios"], recompute_rouge)
        rows = {}
        for key, pub in expected.items():
            mine = agg["metrics"].get(key)
            val = None if mine is None or key in agg["not_in_log"] else mine.value
            row = {"value": val, "published": pub,
                   "abs_diff": None if val is None else abs(val - pub)}
            if key == "forget_quality" and val and pub:
                row["log10"], row["published_log10"] = math.log10(val), math.log10(pub)
                row["log10_rel_diff"] = abs(row["log10"] - row["published_log10"]) / abs(
                    row["published_log10"])
            rows[key] = row
        mu, fq = rows.get("model_utility", {}), rows.get("forget_quality", {})
        out[name] = {"metrics": rows, "rouge_max_abs_diff": agg["rouge_max_abs_diff"],
                     "n": {s: len(v["probability"]) for s, v in agg["components"].items()},
                     "within_done_when": bool(
                         mu.get("abs_diff") is not None and mu["abs_diff"] <= 1e-3
                         and fq.get("log10_rel_diff") is not None
                         and fq["log10_rel_diff"] <= 5e-3)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unlearned", required=True, help="eval_log_aggregated.json of the model")
    ap.add_argument("--retrained", required=True, help="... of its retain (retrained) model")
    ap.add_argument("--expect", default=None,
                    help="JSON file {metric: published value} (default: the leaderboard row)")
    ap.add_argument("--recompute-rouge", action="store_true",
                    help="recompute ROUGE-L recall from generated_text")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    load = lambda p: json.loads(Path(p).read_text(encoding="utf-8"))  # noqa: E731
    expected = load(args.expect) if args.expect else PUBLISHED
    res = compare(load(args.unlearned), load(args.retrained), expected, args.recompute_rouge)
    res["source_of_expected"] = args.expect or SOURCE
    for name in ("tofu", "tofu_paper"):
        print(f"profile {name}: within done-when = {res[name]['within_done_when']}")
        for key, r in res[name]["metrics"].items():
            v = "undefined" if r["value"] is None else f"{r['value']:.6g}"
            extra = ""
            if "log10" in r:
                extra = (f"  log10 {r['log10']:.4f} vs {r['published_log10']:.4f} "
                         f"(rel {r['log10_rel_diff']:.2%})")
            print(f"  {key:<26} {v:>12}  published {r['published']:.6g}{extra}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 0 if res["tofu"]["within_done_when"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
