"""Evaluation efficiency: the full QA/MUSE evaluation against its bare floor (issue 8 item 4).

For each model artifact (``--model-dir``, e.g. the targets the ``bench/methods.py`` set-ups
cached), on the TOFU forget01 request (authors 198–199: 40 forget records; 40 retain records of
authors 0…; ``holdout01``: 40 non-members):

- ``full, batched``: :func:`evaluation.report.evaluate_qa_model` with the profile's batch sizes
  (16 prompts per generate call, 16 texts per scoring forward);
- ``full, one at a time``: the same with batch size 1 for generation and scoring;
- ``floor``: only the model work the evaluation cannot avoid, timed alone with the same
  batches: ``model.generate`` for exactly the decode steps the evaluation performed per batch
  (no stopping criteria, no decoding of text, no ROUGE), plus one ``no_grad`` forward per MIA
  text (the four membership scores all come from that one pass). The rest of the evaluation
  (tokenisation, stop-string checks, ROUGE-L, the bootstrap CIs) is the overhead.

Reported: seconds of each, ``full / floor`` and ``one-at-a-time / batched``.

    python bench/eval_efficiency.py --model-dir var/bench/methods/setup-XXXX/target

Writes ``OUT/eval_efficiency.json`` and ``.png`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import environment, pyplot, set_threads  # noqa: E402
from evaluation.datafiles import default_data_dir  # noqa: E402

TOFU_DIR = default_data_dir("tofu")
MUSE_DIR = default_data_dir("muse_news")


def request_data(n_retain: int = 40):
    """(forget, retain, holdout) Example lists of the forget01 request."""
    from evaluation.runners import _load_rows
    from unlearning_engine.data import Example

    rows = _load_rows(TOFU_DIR / "full.json")
    ex = [Example(question=r["question"], answer=r["answer"], record_id=f"tofu{i}")
          for i, r in enumerate(rows)]
    forget = ex[198 * 20:200 * 20]
    retain = ex[:n_retain]
    holdout = [Example(question=r["question"], answer=r["answer"], record_id=f"holdout01_{i}")
               for i, r in enumerate(_load_rows(TOFU_DIR / "holdout01.json"))]
    return forget, retain, holdout


def generation_calls(tok, forget, retain, profile):
    """The (prompts, max_new_tokens, stop_strings) of the evaluation's three generate calls,
    built as :func:`evaluation.report.evaluate_qa_model` builds them."""
    from evaluation.report import verbmem_pair
    from unlearning_engine.data import format_prompt

    retain_eval = list(retain)
    if profile.max_retain_examples is not None and len(retain_eval) > profile.max_retain_examples:
        picked = sorted(random.Random(profile.seed).sample(range(len(retain_eval)),
                                                          profile.max_retain_examples))
        retain_eval = [retain_eval[i] for i in picked]
    return [([p for p, _ in (verbmem_pair(tok, e) for e in forget)],
             profile.verbmem_max_new_tokens, profile.verbmem_stop_strings),
            ([format_prompt(e) for e in forget], profile.knowmem_max_new_tokens,
             profile.knowmem_stop_strings),
            ([format_prompt(e) for e in retain_eval], profile.knowmem_max_new_tokens,
             profile.knowmem_stop_strings)]


def floor_seconds(model, tok, calls, texts, bs: int, sbs: int) -> dict:
    """Time the unavoidable model work alone (see module docstring)."""
    import torch
    from transformers import GenerationConfig

    from evaluation.generation import _prompt_ids, greedy_generate_detailed, pad_token_id

    pad = pad_token_id(tok)
    gen_s, steps_total = 0.0, 0
    for prompts, max_new, stops in calls:
        gens = greedy_generate_detailed(model, tok, prompts, max_new, batch_size=bs,
                                        stop_strings=stops)
        ids = _prompt_ids(tok, prompts, None)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            steps = min(max_new, max(len(gens[i].token_ids) + (gens[i].stopped_by == "eos")
                                     for i in idx))
            width = max(len(ids[i]) for i in idx)
            inp = torch.full((len(idx), width), pad, dtype=torch.long)
            att = torch.zeros_like(inp)
            for r, i in enumerate(idx):
                inp[r, width - len(ids[i]):] = torch.tensor(ids[i])
                att[r, width - len(ids[i]):] = 1
            cfg = GenerationConfig(max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                                   num_beams=1, pad_token_id=pad, eos_token_id=None)
            t = time.perf_counter()
            with torch.no_grad():
                model.generate(input_ids=inp, attention_mask=att, generation_config=cfg)
            gen_s += time.perf_counter() - t
            steps_total += steps
    score_s = 0.0
    enc = [list(tok(t)["input_ids"]) for t in texts]
    for start in range(0, len(enc), sbs):
        chunk = enc[start:start + sbs]
        width = max(len(c) for c in chunk)
        inp = torch.full((len(chunk), width), pad, dtype=torch.long)
        att = torch.zeros_like(inp)
        for r, c in enumerate(chunk):
            inp[r, :len(c)] = torch.tensor(c)
            att[r, :len(c)] = 1
        t = time.perf_counter()
        with torch.no_grad():
            model(input_ids=inp, attention_mask=att)
        score_s += time.perf_counter() - t
    return {"generation_seconds": gen_s, "scoring_seconds": score_s,
            "total_seconds": gen_s + score_s, "decode_steps": steps_total}


def run(model_dir: str, args) -> dict:
    from evaluation.report import EvaluationProfile, evaluate_qa_model
    from unlearning_engine.data import format_example
    from unlearning_engine.modeling import load_artifact

    model, tok = load_artifact(model_dir)
    forget, retain, holdout = request_data(args.retain)
    prof = EvaluationProfile(verbmem_max_new_tokens=args.verbmem_tokens,
                             max_retain_examples=args.retain)
    out = {"model_dir": model_dir, "params": sum(p.numel() for p in model.parameters()),
           "n": {"forget": len(forget), "retain": len(retain), "holdout": len(holdout)}}
    t = time.perf_counter()
    rep = evaluate_qa_model(model, tok, forget=forget, retain=retain, holdout=holdout,
                            profile=prof)
    out["batched"] = {**rep["timing"], "wall": time.perf_counter() - t}
    texts = [format_example(e) for e in forget + holdout]
    out["floor"] = floor_seconds(model, tok, generation_calls(tok, forget, retain, prof), texts,
                                 prof.generation_batch_size, prof.scoring_batch_size)
    if not args.skip_unbatched:
        one = dataclasses.replace(prof, generation_batch_size=1, scoring_batch_size=1)
        t = time.perf_counter()
        rep1 = evaluate_qa_model(model, tok, forget=forget, retain=retain, holdout=holdout,
                                 profile=one)
        out["one_at_a_time"] = {**rep1["timing"], "wall": time.perf_counter() - t}
        same = all(rep["metrics"][k]["value"] == rep1["metrics"][k]["value"]
                   for k in ("verbmem_forget", "knowmem_forget", "knowmem_retain"))
        out["same_metrics_batched_vs_one"] = same
    out["full_over_floor"] = out["batched"]["total_seconds"] / out["floor"]["total_seconds"]
    if "one_at_a_time" in out:
        out["one_over_batched"] = (out["one_at_a_time"]["total_seconds"]
                                   / out["batched"]["total_seconds"])
    print(json.dumps({k: v for k, v in out.items()}, default=str), flush=True)
    return out


def muse_parts(tok, profile):
    """The MUSE-News subset's generation parts ``{name: (prompts, max_new)}`` and scoring texts
    (PrivLeak forget + holdout and their lower-cased copies), sampled as
    :func:`evaluation.muse.evaluate_muse_news` samples them."""
    from evaluation.muse import _load_split, _qa_pairs, knowmem_prompt

    d = MUSE_DIR
    verb, _ = _load_split(d, "verbmem_forget", profile)
    gen = {"verbmem": ([r["prompt"] for r in verb], profile.verbmem_max_new_tokens)}
    km = []
    for split in ("knowmem_forget", "knowmem_retain"):
        rows, _ = _load_split(d, split, profile)
        icl, _ = _load_split(d, f"{split}_icl", profile, False)
        shots = _qa_pairs(icl, f"{split}_icl")[: profile.knowmem_shots]
        km += [knowmem_prompt(shots, q) for q, _ in _qa_pairs(rows, split)]
    gen["knowmem"] = (km, profile.knowmem_max_new_tokens)
    texts = []
    for split in ("privleak_forget", "privleak_holdout"):
        texts += list(_load_split(d, split, profile)[0])
    return gen, {"privleak": texts + [t.lower() for t in texts]}


def trimmed_muse_dir(src: Path, dst: Path, max_chars: int) -> Path:
    """A copy of the MUSE-News files with every VerbMem prompt cut to its last ``max_chars``
    characters and every PrivLeak text to its first ``max_chars`` (a short SmolLM2 run on a
    2-core machine). Written to a temporary directory that the caller deletes: the data text is
    never kept."""
    from evaluation.muse import MUSE_FILES

    for key, rel in MUSE_FILES.items():
        rows = json.loads((src / rel).read_text(encoding="utf-8"))
        if key == "verbmem_forget":
            rows = [{**r, "prompt": r["prompt"][-max_chars:]} for r in rows]
        elif key.startswith("privleak"):
            rows = [t[:max_chars] for t in rows]
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_text(json.dumps(rows), encoding="utf-8")
    return dst


def run_muse(model_dir: str, args) -> dict:
    """MUSE-News subset: the project's evaluation (SDPA, batched; and batch 1) against the
    independent floor of :mod:`bench.eval_floor`, all in this run."""
    from bench.eval_floor import independent_floor
    from evaluation.muse import MuseNewsProfile, evaluate_muse_news
    from unlearning_engine.modeling import load_artifact

    prof = MuseNewsProfile(limit=args.limit, verbmem_max_new_tokens=args.verbmem_tokens,
                           generation_batch_size=args.batch, scoring_batch_size=args.batch)
    model, tok = load_artifact(model_dir)
    out: dict = {"model_dir": model_dir, "profile": "muse_news", "limit": args.limit,
                 "verbmem_tokens": args.verbmem_tokens, "batch": args.batch,
                 "params": sum(p.numel() for p in model.parameters())}
    runs = {"batched": prof,
            "batch1": dataclasses.replace(prof, generation_batch_size=1, scoring_batch_size=1)}
    reports = {}
    for name, p in runs.items():
        t = time.perf_counter()
        reports[name] = evaluate_muse_news(model, tok, MUSE_DIR, profile=p)
        out[name] = {**reports[name]["timing"], "wall": time.perf_counter() - t}
    if args.eager:
        eager, etok = load_artifact(model_dir, attn_implementation="eager")
        out["batched_eager"] = evaluate_muse_news(eager, etok, MUSE_DIR, profile=prof)["timing"]
        del eager
    keys = ("verbmem_forget", "knowmem_forget", "knowmem_retain", "mink_auc", "ppl_lower_auc")
    out["metrics"] = {k: reports["batched"]["metrics"][k]["value"] for k in keys}
    out["metric_diff_batched_vs_batch1"] = {
        k: abs((reports["batched"]["metrics"][k]["value"] or 0)
               - (reports["batch1"]["metrics"][k]["value"] or 0)) for k in keys}
    del model
    gen, score = muse_parts(tok, prof)
    out["floor"] = independent_floor(model_dir, gen, score, batch_sizes=args.floor_batches)
    print(json.dumps(out, default=str), flush=True)
    return out


def muse_markdown(r: dict) -> str:
    """One row per part (verbmem, knowmem, privleak) and the total."""
    f = r["floor"]["parts"]
    part_s = {
        "verbmem": ("verbmem_seconds",), "knowmem": ("knowmem_seconds",),
        "privleak": ("scoring_seconds",)}
    lines = ["| part | project, batched s | project, batch 1 s | independent floor s (best batch) "
             "| FLOP bound s | straightforward batch-1 s | batched / floor | batched / straightforward |",
             "|---|---|---|---|---|---|---|---|"]
    tot = {"b": 0.0, "one": 0.0, "floor": 0.0, "flop": 0.0, "s1": 0.0}
    for part, (key,) in part_s.items():
        b, one, fl = r["batched"][key], r["batch1"][key], f[part]
        tot["b"] += b
        tot["one"] += one
        tot["floor"] += fl["floor_s"]
        tot["flop"] += fl["flop_bound_s"]
        tot["s1"] += fl["batch1_s"]
        lines.append(f"| {part} | {b:.1f} | {one:.1f} | {fl['floor_s']:.1f} ({fl['best_batch']}) | "
                     f"{fl['flop_bound_s']:.2f} | {fl['batch1_s']:.1f} | "
                     f"{b / fl['floor_s']:.2f} | {b / fl['batch1_s']:.2f} |")
    lines.append(f"| **all** | {tot['b']:.1f} | {tot['one']:.1f} | {tot['floor']:.1f} | "
                 f"{tot['flop']:.2f} | {tot['s1']:.1f} | {tot['b'] / tot['floor']:.2f} | "
                 f"{tot['b'] / tot['s1']:.2f} |")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    lines = ["| model | params | full, batched s (gen / score) | floor s (gen / score; decode "
             "steps) | full / floor | one at a time s | one at a time / batched | same metrics |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, f, o = r["batched"], r["floor"], r.get("one_at_a_time")
        lines.append(
            f"| `{Path(r['model_dir']).name}` ({Path(r['model_dir']).parent.name}) | "
            f"{r['params'] / 1e6:.1f}M | {b['total_seconds']:.1f} ({b['generation_seconds']:.1f}"
            f" / {b['scoring_seconds']:.1f}) | {f['total_seconds']:.1f} "
            f"({f['generation_seconds']:.1f} / {f['scoring_seconds']:.1f}; {f['decode_steps']}) "
            f"| {r['full_over_floor']:.2f} | "
            + (f"{o['total_seconds']:.1f} | {r['one_over_batched']:.2f} | "
               f"{r['same_metrics_batched_vs_one']} |" if o else "– | – | – |"))
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Stacked generation / scoring seconds: floor, full batched, full one at a time."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(4.5 * len(rows), 3.8), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        bars = [("floor", r["floor"]), ("batched", r["batched"])]
        if r.get("one_at_a_time"):
            bars.append(("one at a time", r["one_at_a_time"]))
        names = [b[0] for b in bars]
        gen = [b[1]["generation_seconds"] for b in bars]
        sc = [b[1]["scoring_seconds"] for b in bars]
        ax.bar(names, gen, label="generation")
        ax.bar(names, sc, bottom=gen, label="scoring (MIA)")
        ax.set_ylabel("seconds")
        ax.set_title(f"{Path(r['model_dir']).parent.name}: {r['params'] / 1e6:.1f}M params",
                     fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", action="append", required=True)
    ap.add_argument("--retain", type=int, default=40)
    ap.add_argument("--verbmem-tokens", type=int, default=48)
    ap.add_argument("--skip-unbatched", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="var/bench/eval_efficiency")
    ap.add_argument("--profile", choices=("qa", "muse"), default="qa",
                    help="qa: TOFU forget01 request (default); muse: MUSE-News subset vs the "
                         "independent floor of bench/eval_floor.py")
    ap.add_argument("--limit", type=int, default=10, help="muse: rows per split")
    ap.add_argument("--batch", type=int, default=8, help="muse: the profile's batch sizes")
    ap.add_argument("--floor-batches", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 8], help="muse: batch sizes tried for the floor")
    ap.add_argument("--eager", action="store_true", help="muse: also time eager attention")
    ap.add_argument("--max-chars", type=int, default=None,
                    help="muse: cut VerbMem prompts / PrivLeak texts to this many characters")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    if args.profile == "muse":
        if args.verbmem_tokens == 48:
            args.verbmem_tokens = 128
        global MUSE_DIR
        full = MUSE_DIR
        with tempfile.TemporaryDirectory() as tmp:
            try:
                if args.max_chars:
                    MUSE_DIR = trimmed_muse_dir(full, Path(tmp), args.max_chars)
                rows = [run_muse(d, args) for d in args.model_dir]
            finally:
                MUSE_DIR = full
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval_efficiency_muse.json").write_text(json.dumps(
            {"bench": "eval_efficiency --profile muse", "command": "python bench/eval_efficiency.py "
             + " ".join(argv if argv is not None else sys.argv[1:]), "rows": rows,
             "environment": environment()}, indent=1, default=str))
        for r in rows:
            print(muse_markdown(r))
        return 0
    rows = [run(d, args) for d in args.model_dir]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval_efficiency.json").write_text(json.dumps(
        {"bench": "eval_efficiency", "command": "python bench/eval_efficiency.py " + " ".join(
            argv if argv is not None else sys.argv[1:]), "rows": rows,
         "environment": environment()}, indent=1, default=str))
    plot(rows, out / "eval_efficiency.png")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
