"""DP2 versus exact retraining: cost ratio at matched utility (issue 8 item 1).

DP2Unlearning (Jahan et al., arXiv 2504.13774, §6) claims about half the cost of retraining: a
DP base BM trained once with (ε, δ)-DP on the whole corpus is fine-tuned on the retain set only,
for fewer epochs than retraining from the pre-trained base. Per forget size (``--forget``, in
TOFU authors: 2 = forget01, 10 = forget05) this runs ``retrain`` and ``dp2`` ``--repeats`` times
on the same request with :mod:`bench.methods` and reports, per method, the wall time (median
[min, max]), supervised tokens processed, and the metrics (VerbMem_f, KnowMem_f, KnowMem_r,
PrivLeak vs the retrain); then

- ``ratio`` = median dp2 wall / median retrain wall (same run), and the tokens ratio;
- ``utility matched``: dp2's KnowMem_r is within 5 points of the retrain's, or inside the
  retrain's 95 % CI;
- the one-time DP base cost, and the break-even number of requests after which
  ``DP base + n·dp2 < n·retrain``.

Goal of issue 8: ratio ≤ 0.35.

    python bench/dp2_vs_retrain.py --preset tiny --authors 30 --forget 2 --forget 10 --repeats 3

Writes ``OUT/dp2_vs_retrain-<preset>.json`` and ``.png``; the per-request runs are the cached
``bench/methods.py`` runs under the same ``OUT``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import methods as mb  # noqa: E402
from bench.common import environment, pyplot, set_threads  # noqa: E402

GOAL = 0.35
SPLITS = {2: "forget01", 10: "forget05", 20: "forget10"}


def summarize(doc: dict) -> dict:
    """Ratio block of one forget size from a :func:`bench.methods.run_request` document."""
    rows = {r["method"]: r for r in doc["rows"]}
    rt, dp = rows["retrain"], rows["dp2"]
    setup = doc["setup"]
    dp_base_s = (setup.get("seconds") or {}).get("dp_base")
    ratio = dp["wall_seconds"] / rt["wall_seconds"]
    tok_ratio = (dp["tokens"] / rt["tokens"]) if dp.get("tokens") and rt.get("tokens") else None
    ci = rt.get("knowmem_retain_ci95")
    matched = None
    if dp.get("knowmem_retain") is not None and rt.get("knowmem_retain") is not None:
        matched = (abs(dp["knowmem_retain"] - rt["knowmem_retain"]) <= 5.0
                   or (ci is not None and ci[0] <= dp["knowmem_retain"] <= ci[1]))
    saving = rt["wall_seconds"] - dp["wall_seconds"]
    breakeven = math.ceil(dp_base_s / saving) if dp_base_s and saving > 0 else None
    return {"forget_authors": doc["forget_authors"], "forget_records": doc["forget_records"],
            "retain_records": doc["retain_records"], "split": SPLITS.get(len(doc["forget_authors"])),
            "retrain": rt, "dp2": dp, "ratio": ratio, "tokens_ratio": tok_ratio,
            "goal": GOAL, "goal_met": ratio <= GOAL, "utility_matched": matched,
            "dp_base_seconds": dp_base_s, "dp_ledger": setup.get("dp_ledger"),
            "breakeven_requests": breakeven}


def markdown(blocks: list[dict]) -> str:
    f = mb._f
    out = ["| forget | records f/r | retrain wall s | dp2 wall s | ratio (goal ≤ 0.35) | "
           "tokens ratio | KnowMem_r retrain / dp2 | VerbMem_f retrain / dp2 | "
           "PrivLeak dp2 | DP base s (once) | break-even requests |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in blocks:
        rt, dp = b["retrain"], b["dp2"]

        def w(r):
            s = f(r["wall_seconds"])
            return s + (f" [{f(r['wall_min'])}, {f(r['wall_max'])}]" if r.get("repeats", 1) > 1
                        else "")
        out.append(
            f"| {b['split'] or b['forget_authors']} | {b['forget_records']}/{b['retain_records']} "
            f"| {w(rt)} | {w(dp)} | {b['ratio']:.2f} ({'met' if b['goal_met'] else 'not met'}) "
            f"| {f(b['tokens_ratio'], 2)} | {f(rt['knowmem_retain'])} / {f(dp['knowmem_retain'])}"
            f"{'' if b['utility_matched'] else ' (not matched)'} "
            f"| {f(rt['verbmem_forget'])} / {f(dp['verbmem_forget'])} | {f(dp.get('privleak'))} "
            f"| {f(b['dp_base_seconds'])} | {b['breakeven_requests'] or '–'} |")
    return "\n".join(out)


def plot(blocks: list[dict], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = [b["split"] or str(b["forget_authors"]) for b in blocks]
    x = range(len(blocks))
    for j, (k, c) in enumerate([("retrain", "tab:blue"), ("dp2", "tab:orange")]):
        vals = [b[k]["wall_seconds"] for b in blocks]
        lo = [b[k]["wall_seconds"] - b[k]["wall_min"] for b in blocks]
        hi = [b[k]["wall_max"] - b[k]["wall_seconds"] for b in blocks]
        ax.bar([i + (j - 0.5) * 0.38 for i in x], vals, 0.38, yerr=[lo, hi], label=k, color=c,
               capsize=3)
    for i, b in enumerate(blocks):
        ax.text(i, max(b["retrain"]["wall_seconds"], b["dp2"]["wall_seconds"]) * 1.05,
                f"ratio {b['ratio']:.2f}", ha="center", fontsize=8)
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("wall time per request (s), median [min, max]")
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--authors", type=int, default=30)
    ap.add_argument("--forget", type=int, action="append", help="forget size(s) in authors")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="var/bench/methods")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    t0 = time.perf_counter()
    blocks = []
    for k in args.forget or [2, 10]:
        ns = mb.build_parser().parse_args([
            "--preset", args.preset, "--authors", str(args.authors), "--forget", str(k),
            "--methods", "retrain,dp2", "--repeats", str(args.repeats), "--device", args.device,
            "--out", args.out] + (["--fresh"] if args.fresh else []))
        doc = mb.run_request(ns, f"(via bench/dp2_vs_retrain.py) forget {k}")
        blocks.append(summarize(doc))
    env = environment()
    command = "python bench/dp2_vs_retrain.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    res = {"bench": "dp2_vs_retrain", "command": command, "preset": args.preset,
           "authors": args.authors, "repeats": args.repeats, "blocks": blocks,
           "source": "DP2Unlearning arXiv 2504.13774 §6", "environment": env,
           "total_seconds": round(time.perf_counter() - t0, 1)}
    out = Path(args.out)
    (out / f"dp2_vs_retrain-{args.preset}.json").write_text(json.dumps(res, indent=1,
                                                                       default=str))
    plot(blocks, out / f"dp2_vs_retrain-{args.preset}.png",
         f"dp2 vs retrain, {args.preset}, {args.authors} TOFU authors, {env['cpu_count']} CPU")
    print(markdown(blocks))
    print(f"wrote {out / f'dp2_vs_retrain-{args.preset}.json'} and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
