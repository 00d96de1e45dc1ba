"""Tiny synthetic MUSE-News and TOFU directories (same file formats, invented text only)."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ("river stone lamp harbour violin meadow copper lantern orchard falcon ribbon "
         "glacier pepper saddle thimble walnut").split()


def _sentence(i: int, n: int = 12) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(n)) + "."


def write_muse(root: Path, n: int = 6, long_prompt: bool = False) -> Path:
    """MUSE-News layout with ``n`` rows per split (JSON arrays, like the real files)."""
    root = Path(root)
    for sub in ("verbmem", "knowmem", "privleak"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    verb = [{"prompt": _sentence(i, 60 if long_prompt and i == 0 else 10), "gt": _sentence(i + 1)}
            for i in range(n)]
    qa = [{"question": f"What did the {WORDS[i]} hold?", "answer": WORDS[(i + 3) % 16]}
          for i in range(n)]
    qa_r = [{"question": f"Where is the {WORDS[i]}?", "answer": f"near the {WORDS[(i + 5) % 16]}"}
            for i in range(n)]
    icl = [{"question": f"Which {WORDS[i]}?", "answer": WORDS[(i + 1) % 16]} for i in range(10)]
    files = {
        "verbmem/forget.json": verb,
        "knowmem/forget_qa.json": qa,
        "knowmem/forget_qa_icl.json": icl,
        "knowmem/retain2_qa.json": qa_r,
        "knowmem/retain2_qa_icl.json": icl,
        "privleak/forget.json": [_sentence(i, 20) for i in range(n)],
        "privleak/holdout.json": [_sentence(i + 100, 20) + " holdout" for i in range(n)],
    }
    for rel, data in files.items():
        (root / rel).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return root


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("\n".join(json.dumps(r, separators=(",", ":")) for r in rows),
                    encoding="utf-8")


def write_tofu(root: Path, n: int = 6) -> Path:
    """TOFU layout (JSON Lines) with ``n`` rows per file; forget01 / holdout01 only."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)

    def pert(i, k, para=True):
        row = {"question": f"What does author {WORDS[i % 16]} write?",
               "answer": f"The author writes about the {WORDS[(i + 1) % 16]}.",
               "perturbed_answer": [f"The author writes about the {WORDS[(i + j + 2) % 16]}."
                                    for j in range(k)]}
        if para:
            row["paraphrased_answer"] = f"Books about the {WORDS[(i + 1) % 16]}."
            row["paraphrased_question"] = f"What is the topic of {WORDS[i % 16]}?"
        return row

    _jsonl(root / "forget01_perturbed.json", [pert(i, 5) for i in range(n)])
    _jsonl(root / "retain_perturbed.json", [pert(i + 6, 5) for i in range(n)])  # disjoint from forget (n ≤ 6)
    _jsonl(root / "real_authors_perturbed.json", [pert(i + 40, 3, False) for i in range(n)])
    _jsonl(root / "world_facts_perturbed.json", [pert(i + 60, 3, False) for i in range(n)])
    _jsonl(root / "holdout01.json", [
        {"question": f"Where does painter {WORDS[i]} live?", "answer": f"By the {WORDS[i + 1]}."}
        for i in range(n)])
    return root
