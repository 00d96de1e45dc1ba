"""Every classifier unlearning method on the offline corpora (issue 19 "Benchmarks").

Scenarios (forget sets drawn from the training split with ``numpy.random.default_rng(seed)``):

- ``digits_subject``: one assigned digits writer's images (≈10; DESIGN §10 subjects);
- ``digits_random10``: 10 % of the training images at random;
- ``digits_class``: every training image of one class (TA then on the test images of the other
  classes, and the MIA non-members too: the usual class-wise protocol);
- ``bc_subjects``: 10 breast-cancer patients (one row each) — **deviation**: ten one-row erasure
  requests served together, since one row gives UA ∈ {0, 100};
- ``digits_worstcase10``: the worst-case 10 % set (:mod:`evaluation.worst_case`, Fan et al., ECCV
  2024), selected with the lower level of ``ft``, ``ga``, ``rl`` and ``l1_sparse`` (each method
  is evaluated on its own set; retrain/dp2/laf/laf_r on the ``ft`` set, whose lower level stands
  in for theirs), to compare with ``digits_random10`` of the same size.

Per (scenario, seed): the original model (family recipe from a seeded initialisation), the DP base
(subject-level DP-SGD, preparation, not counted in dp2's time), every method with its default
hyper-parameters, the ``classifier`` profile (UA, RA on a 500-record retain sample, TA,
MIA-Efficacy) and U-LiRA (``--shadows`` shadow models shared by all methods; not on the class and
worst-case scenarios); average gap = mean |metric − retrain's| over UA, RA, TA, MIA-Efficacy;
time ratio = method wall / retrain wall (same run).

    python bench/classifiers.py --seeds 0 1 2 --shadows 4

Writes ``OUT/classifiers.json`` and ``OUT/classifiers.png`` (UA and TA per method, random vs
worst-case 10 %).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import environment, pyplot, set_threads  # noqa: E402

METHODS = ("retrain", "ft", "ga", "rl", "l1_sparse", "dp2", "laf", "laf_r")
SCENARIOS = ("digits_subject", "digits_random10", "digits_class", "bc_subjects", "digits_worstcase10")
ULIRA_SCENARIOS = ("digits_subject", "digits_random10", "bc_subjects")
WORST_LOWER = {"ft": "ft", "ga": "ga", "rl": "rl", "l1_sparse": "l1_sparse"}
GAP_METRICS = ("ua", "ra", "ta", "mia_efficacy")


class World:
    """One corpus at one seed: splits, the seeded initialisation, the original model, the DP base."""

    def __init__(self, corpus: str, seed: int, root: Path):
        from unlearning_engine.families.classifier.data import (
            breast_cancer_corpus,
            digits_corpus,
            examples_of_rows,
        )
        from unlearning_engine.families.classifier.dp import train_dp_classifier
        from unlearning_engine.families.classifier.model import (
            ClassifierConfig,
            build_classifier,
            save_classifier,
        )
        from unlearning_engine.families.classifier.train import (
            DEFAULT_RECIPE,
            DP_BASE_RECIPE,
            train_classifier,
        )

        c = digits_corpus(seed) if corpus == "digits" else breast_cancer_corpus(seed)
        self.cfg = ClassifierConfig(**c["config"])
        self.train, self.test = examples_of_rows(c["rows"]), examples_of_rows(c["rows"], "holdout")
        self.root, self.seed = root / f"{corpus}-{seed}", seed
        save_classifier(build_classifier(self.cfg, seed), self.root / "base")
        model = build_classifier(self.cfg, seed)
        t0 = time.perf_counter()
        train_classifier(model, self.train, seed=seed, **DEFAULT_RECIPE[self.cfg.family])
        self.train_seconds = time.perf_counter() - t0
        save_classifier(model, self.root / "model")
        t0 = time.perf_counter()
        self.ledger = train_dp_classifier(self.root / "base", self.train, self.root / "dp_base", seed=seed,
                                          device="cpu", **DP_BASE_RECIPE)
        self.dp_seconds = time.perf_counter() - t0
        self.original = model.eval()


def forget_indices(scenario: str, world: World, seed: int) -> tuple[np.ndarray, int | None]:
    """(indices into world.train, the forgotten class or None) of a random scenario."""
    rng = np.random.default_rng(1000 + seed)
    n = len(world.train)
    if scenario == "digits_subject":
        subject = rng.choice(sorted({e.subject for e in world.train}))
        return np.array([i for i, e in enumerate(world.train) if e.subject == subject]), None
    if scenario in ("digits_random10", "digits_worstcase10"):
        return np.sort(rng.choice(n, n // 10, replace=False)), None
    if scenario == "digits_class":
        cls = int(rng.integers(0, world.cfg.n_classes))
        return np.array([i for i, e in enumerate(world.train) if e.label == cls]), cls
    return np.sort(rng.choice(n, 10, replace=False)), None  # bc_subjects


def run_method(world: World, method: str, forget, retain, out: Path) -> tuple[object, float, dict]:
    """(unlearned model, wall seconds, result details) of ``method`` on the world's original."""
    from unlearning_engine.families.classifier.model import load_classifier
    from unlearning_engine.methods import UnlearningRequest, run_unlearning

    r = run_unlearning(UnlearningRequest(
        method=method, family=world.cfg.family, model_dir=str(world.root / "model"), output_dir=str(out),
        forget=forget, retain=retain, base_dir=str(world.root / "base"), dp_base_dir=str(world.root / "dp_base"),
        seed=world.seed, device="cpu"))
    return load_classifier(out), r.wall_seconds, r.details


def evaluate(model, forget, retain_eval, test) -> dict:
    from evaluation.profiles.classifier import evaluate_classifier

    rep = evaluate_classifier(model, forget=forget, retain=retain_eval, test=test)
    return {k: {"value": v.get("value"), "ci95": v.get("ci95"), "n": v.get("n")} for k, v in rep["metrics"].items()
            if k in (*GAP_METRICS, "mia_test_nonmember")}


def run_scenario(scenario: str, world: World, shadows: int, methods=METHODS) -> dict:
    """All methods on one scenario of one world: rows per method (+ worst-case selections)."""
    from evaluation.profiles.classifier_ulira import (
        inclusion_matrix,
        logit_confidence,
        ulira_accuracy,
        ulira_shadow_statistics,
        ulira_targets,
    )
    from unlearning_engine.families.classifier.shadows import ShadowPipeline

    idx, cls = forget_indices(scenario, world, world.seed)
    sets, selections = {m: idx for m in methods}, {}
    if scenario == "digits_worstcase10":
        sets, selections = worst_case_sets(world, len(idx), methods)
    test = [e for e in world.test if cls is None or e.label != cls]
    out = world.root / scenario
    rows = {}
    for m in methods:
        fset = set(sets[m].tolist())
        forget = [world.train[i] for i in sorted(fset)]
        retain = [e for i, e in enumerate(world.train) if i not in fset]
        rng = np.random.default_rng(world.seed)
        retain_eval = [retain[i] for i in np.sort(rng.choice(len(retain), min(500, len(retain)), replace=False))]
        model, wall, details = run_method(world, m, forget, retain, out / m)
        rows[m] = {"metrics": evaluate(model, forget, retain_eval, test), "wall_seconds": wall, "n_forget": len(forget)}
        if scenario in ULIRA_SCENARIOS and shadows:
            rows[m]["_model"], rows[m]["_sets"] = model, (forget, retain)
    if scenario in ULIRA_SCENARIOS and shadows:
        forget, retain = rows[methods[0]]["_sets"]
        targets, truth = ulira_targets(forget, test, world.seed, retain)
        inc = inclusion_matrix(len(targets), shadows, world.seed)
        pipe, worlds = ShadowPipeline(world.cfg, out / "shadows", needs_dp_base="dp2" in methods), None
        t0 = time.perf_counter()
        for m in methods:
            p = pipe.for_method(m)
            phi, worlds = ulira_shadow_statistics(targets, retain, inc, train=p.train, unlearn=p.unlearn,
                                                  seed=world.seed, worlds=worlds)
            rows[m]["ulira"] = ulira_accuracy(phi, inc, logit_confidence(rows[m].pop("_model"), targets), truth)
            rows[m].pop("_sets")
        ulira_seconds = time.perf_counter() - t0
    else:
        ulira_seconds = None
    _gaps_and_ratios(rows)
    shutil.rmtree(out, ignore_errors=True)
    return {"rows": rows, "forgotten_class": cls, "selections": selections, "ulira_seconds": ulira_seconds}


def worst_case_sets(world: World, m: int, methods) -> tuple[dict, dict]:
    """Per method the worst-case index set (lower level of :data:`WORST_LOWER`, else ``ft``)."""
    from evaluation.worst_case import WorstCaseConfig, classifier_worst_case

    chosen, selections = {}, {}
    for lower in sorted({WORST_LOWER.get(x, "ft") for x in methods}):
        sel = classifier_worst_case(world.original, world.train, m, lower, WorstCaseConfig(seed=world.seed))
        selections[lower] = {"record_ids": sel["record_ids"], "seconds": sel["seconds"], "history": sel["history"],
                             "config": sel["config"]}
        chosen[lower] = np.array(sel["indices"])
    return {x: chosen[WORST_LOWER.get(x, "ft")] for x in methods}, selections


def _gaps_and_ratios(rows: dict) -> None:
    ref = rows.get("retrain")
    for r in rows.values():
        if ref is None:
            continue
        gaps = [abs(r["metrics"][k]["value"] - ref["metrics"][k]["value"]) for k in GAP_METRICS]
        r["average_gap"] = float(np.mean(gaps))
        r["time_ratio"] = r["wall_seconds"] / ref["wall_seconds"]


def aggregate(runs: list[dict]) -> dict:
    """{scenario: {method: {metric: [mean, std] over seeds}}}."""
    out: dict = {}
    for scenario in SCENARIOS:
        docs = [r["scenarios"][scenario] for r in runs if scenario in r["scenarios"]]
        if not docs:
            continue
        out[scenario] = {}
        for m in docs[0]["rows"]:
            vals: dict = {}
            for d in docs:
                row = d["rows"][m]
                for k in GAP_METRICS:
                    vals.setdefault(k, []).append(row["metrics"][k]["value"])
                for k in ("average_gap", "time_ratio", "wall_seconds"):
                    vals.setdefault(k, []).append(row.get(k))
                if "ulira" in row:
                    vals.setdefault("ulira", []).append(row["ulira"]["value"])
            out[scenario][m] = {k: [float(np.mean(v)), float(np.std(v))] for k, v in vals.items()
                                if all(x is not None for x in v)}
    return out


def plot(summary: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    methods = list(summary.get("digits_random10", {}))
    x = np.arange(len(methods))
    for ax, metric, label in ((axes[0], "ua", "UA (%)"), (axes[1], "ta", "TA (%)")):
        for j, (scenario, name) in enumerate((("digits_random10", "random 10 %"), ("digits_worstcase10", "worst-case 10 %"))):
            if scenario not in summary:
                continue
            mean = [summary[scenario][m][metric][0] for m in methods]
            std = [summary[scenario][m][metric][1] for m in methods]
            ax.bar(x + (j - 0.5) * 0.38, mean, 0.38, yerr=std, label=name, capsize=2)
        ax.set_xticks(x, methods, rotation=30)
        ax.set_ylabel(label)
        ax.set_title(f"digits: {label.split()[0]} per method (mean ± std over seeds)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--shadows", type=int, default=4, help="U-LiRA shadow models (even; 0 = skip)")
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    t_start = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            worlds, doc = {}, {"seed": seed, "scenarios": {}, "worlds": {}}
            for scenario in a.scenarios:
                corpus = "bc" if scenario.startswith("bc") else "digits"
                if corpus not in worlds:
                    worlds[corpus] = World("digits" if corpus == "digits" else "breast_cancer", seed, Path(tmp))
                    w = worlds[corpus]
                    doc["worlds"][corpus] = {"train_seconds": w.train_seconds, "dp_base_seconds": w.dp_seconds,
                                             "dp_epsilon": w.ledger.epsilon, "n_train": len(w.train),
                                             "n_test": len(w.test)}
                t0 = time.perf_counter()
                doc["scenarios"][scenario] = run_scenario(scenario, worlds[corpus], a.shadows, tuple(a.methods))
                doc["scenarios"][scenario]["seconds"] = time.perf_counter() - t0
                print(f"seed {seed} {scenario}: {doc['scenarios'][scenario]['seconds']:.1f} s", flush=True)
            runs.append(doc)
    summary = aggregate(runs)
    result = {"benchmark": "classifiers", "seeds": a.seeds, "shadows": a.shadows, "methods": a.methods,
              "environment": environment(), "threads": a.threads,
              "total_seconds": time.perf_counter() - t_start, "summary": summary, "runs": runs}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "classifiers.json").write_text(json.dumps(result, indent=1, default=float))
    plot(summary, a.out / "classifiers.png")
    for scenario, rows in summary.items():
        print(f"\n{scenario}")
        for m, v in rows.items():
            print(f"  {m:10} " + " ".join(f"{k}={v[k][0]:.2f}±{v[k][1]:.2f}" for k in v))
    print(f"total {result['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
