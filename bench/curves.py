"""Scalability and sustainability curves (issue 8 item 5; MUSE arXiv 2407.06460 §3 C5/C6).

A thin front of :mod:`evaluation.runners` (which trains, unlearns, evaluates and writes the
JSON series and the PNG plots) that also prints the series as Markdown tables:

- ``scalability``: each method on forget sets of growing size from the same target (sizes in
  TOFU authors: 2/10/20 = forget01/05/10), cost (wall s, tokens) and metrics per size;
- ``sustainability``: ``--requests`` sequential single-author requests per method on one
  lineage; ``dp2`` restarts every request from the DP base (DESIGN §6.5), the others continue
  from the previous unlearned model.

    python bench/curves.py scalability --method dp2 --method npo_gd --authors 40 --sizes 2,10,20
    python bench/curves.py sustainability --method dp2 --method npo_gd --requests 10 \\
        --authors 30 --quick

Every flag of ``python -m evaluation.runners`` is accepted (``--out`` defaults to
``var/bench/curves``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _v(metrics: dict | None, key: str, nd: int = 1) -> str:
    if not metrics or not metrics.get(key) or metrics[key].get("value") is None:
        return "–"
    return f"{metrics[key]['value']:.{nd}f}"


def markdown(kind: str, docs: list[dict]) -> str:
    """One table over the methods' series."""
    if kind == "scalability":
        head = "| method | forget authors | forget/retain records | wall s | tokens |"
        key = "forget_count"
    else:
        head = "| method | request | forget/retain records | wall s | tokens |"
        key = "request"
    lines = [head + " VerbMem_f | KnowMem_f | KnowMem_r | Min-K AUC | PrivLeak % (ref) | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for doc in docs:
        for r in doc["series"]:
            m = r.get("metrics")
            ref = (r.get("privleak_reference") or {}).get("type", "–")
            lines.append(
                f"| {doc['method']} | {r[key]} | {r['forget_records']}/{r['retain_records']} | "
                f"{r['wall_seconds']:.1f} | {r.get('tokens') or '–'} | {_v(m, 'verbmem_forget')} | "
                f"{_v(m, 'knowmem_forget')} | {_v(m, 'knowmem_retain')} | "
                f"{_v(m, 'mink_auc', 3)} | {_v(m, 'privleak')} ({ref}) | {r['status']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from evaluation import runners

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--out" not in argv:
        argv += ["--out", "var/bench/curves"]
    rc = runners.main(argv)
    args = runners.build_parser().parse_args(argv)
    out = Path(args.out)
    docs = [json.loads((out / f"{args.kind}_{m}.json").read_text())
            for m in args.methods]
    print(markdown(args.kind, docs))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
