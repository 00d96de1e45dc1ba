"""Small benchmark of every method on the demo-size TOFU data (``python -m unlearning_engine.bench``).

Data (DESIGN §10): 30 TOFU authors from ``full.json`` — authors 0…27 plus the last two (199's 20
records = the forget set, 198 = the rest of forget01 kept in the retain set); the served model is
the "tiny" preset fine-tuned with ``DEMO_RECIPE["target"]``; every method runs with its "tiny"
preset. Reported per method: wall seconds, ROUGE-L F1 (``rouge_score``, no stemmer) of the greedy
answer (48 new tokens, prompt ``Question: q\\nAnswer: ``) vs the true answer on the forget set and
on a fixed sample of 40 retain records, or the collapse reason.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from .collapse import greedy_continuation
from .data import Example, format_example, format_prompt
from .errors import CollapseError
from .methods import UnlearningRequest, available_methods, run_unlearning
from .modeling import DEMO_RECIPE, build_model, load_artifact, save_artifact, train_tokenizer
from .training import train_causal_lm


def load_demo_records(path: str | Path) -> list[Example]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    authors = list(range(28)) + [198, 199]
    return [Example(question=rows[i]["question"], answer=rows[i]["answer"], record_id=f"tofu{i}")
            for a in authors for i in range(20 * a, 20 * a + 20)]


def rouge_l(model, tok, examples: list[Example], max_new_tokens: int = 48) -> float:
    from rouge_score import rouge_scorer

    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    tot = 0.0
    for ex in examples:
        ids = list(tok(format_prompt(ex))["input_ids"])
        if not ids or ids[0] != tok.bos_token_id:
            ids = [tok.bos_token_id] + ids
        gen = tok.decode(greedy_continuation(model, ids, max_new_tokens, tok.eos_token_id),
                         skip_special_tokens=True)
        tot += sc.score(ex.answer, gen)["rougeL"].fmeasure
    return tot / max(len(examples), 1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="/work/shared/data/tofu/full.json")
    ap.add_argument("--methods", default=",".join(m for m in available_methods() if m != "dp2"))
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ue-bench-"))
    recs = load_demo_records(args.data)
    forget, retain = recs[-20:], recs[:-20]
    retain_sample = retain[::len(retain) // 40][:40]
    t0 = time.perf_counter()
    tok = train_tokenizer([format_example(e) for e in recs], **DEMO_RECIPE["tokenizer"])
    save_artifact(build_model(tok, DEMO_RECIPE["model"]["preset"]), tok, work / "base")
    served, _ = load_artifact(work / "base")
    train_causal_lm(served, tok, recs, **DEMO_RECIPE["target"])
    save_artifact(served, tok, work / "served")
    rows = [{"method": "(served)", "wall_s": round(time.perf_counter() - t0, 1),
             "forget_rougeL": rouge_l(served, tok, forget), "retain_rougeL": rouge_l(served, tok, retain_sample)}]
    print(json.dumps(rows[-1]), flush=True)
    for m in args.methods.split(","):
        t = time.perf_counter()
        try:
            res = run_unlearning(UnlearningRequest(
                method=m, model_dir=str(work / "served"), output_dir=str(work / m), forget=forget,
                retain=retain, base_dir=str(work / "base"), hyperparameters={"preset": "tiny"}))
            model, tk = load_artifact(res.output_dir)
            row = {"method": m, "wall_s": round(time.perf_counter() - t, 1), "steps": res.steps,
                   "forget_rougeL": rouge_l(model, tk, forget),
                   "retain_rougeL": rouge_l(model, tk, retain_sample)}
        except CollapseError as exc:
            row = {"method": m, "wall_s": round(time.perf_counter() - t, 1), "collapse": exc.reason}
        rows.append(row)
        print(json.dumps(row), flush=True)
    (work / "bench.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
