"""bench/tofu_published_logs.py on a made-up log in the benchmark's layout (no network, no
published data): it must read ``{row: value}`` metrics in row order and give the golden
values of tests/evaluation/test_tofu_golden.py."""
from __future__ import annotations

import json
import math

import pytest

from bench import tofu_published_logs as tpl
from tests.evaluation import test_tofu_golden as golden


def _block(rows, base_is_answer: bool, rouge=None) -> dict:
    """Benchmark layout: per-token mean NLL = −log p̄, one dict per metric keyed "0", "1"…"""
    out = {"avg_gt_loss": {}, "avg_paraphrased_loss": {}, "average_perturb_loss": {}}
    for i, row in enumerate(rows):
        a, b, ps = (row[0], row[0], row[1]) if base_is_answer else row[:3]
        key = str(i)
        out["avg_gt_loss"][key] = -math.log(a)
        out["avg_paraphrased_loss"][key] = -math.log(b)
        out["average_perturb_loss"][key] = [-math.log(p) for p in ps]
    if rouge is not None:
        out["rougeL_recall"] = {str(i): r for i, r in enumerate(rouge)}
    return out


def _logs():
    one_token = [((a[0]), [p[0] for p in ps]) for a, ps, _, _ in golden.WORLD_FACTS]
    ra = [((a[0]), [p[0] for p in ps]) for a, ps, _, _ in golden.REAL_AUTHORS]
    unlearned = {
        "eval_log_forget.json": _block(golden.FORGET, False),
        "eval_log.json": _block(golden.RETAIN, False, rouge=[1.0, 0.6]),
        "eval_real_author_wo_options.json": _block(ra, True, rouge=[1.0, 0.5]),
        "eval_real_world_wo_options.json": _block(one_token, True, rouge=[0.5, 0.5]),
    }
    # retrained forget R = 1.5, 3, 4, 5, 6: p̄(ã) = 0.1, one perturbed answer p̄ = 0.1·R
    rows = [(0.5, 0.1, [0.1 * r]) for r in golden.RETRAINED_R]
    retrained = {"eval_log_forget.json": _block(rows, False)}
    return unlearned, retrained


def test_checker_reproduces_the_golden_values():
    """Means only (no sums in the log): the ``tofu`` profile gives the golden MU 0.651067 and
    FQ 5/63 (test_tofu_golden); row keys are read in integer order."""
    unlearned, retrained = _logs()
    expected = {"model_utility": 0.6510666509281998, "forget_quality": 5 / 63,
                "truth_ratio_forget": 0.55}
    res = tpl.compare(unlearned, retrained, expected)
    t = res["tofu"]["metrics"]
    assert t["model_utility"]["value"] == pytest.approx(0.651067, abs=1e-6)
    assert t["forget_quality"]["value"] == pytest.approx(5 / 63, abs=1e-12)
    assert t["forget_quality"]["log10_rel_diff"] == pytest.approx(0.0, abs=1e-9)
    assert t["truth_ratio_forget"]["value"] == pytest.approx(0.55, abs=1e-12)
    assert res["tofu"]["within_done_when"]
    assert res["tofu"]["n"] == {"retain": 2, "real_authors": 2, "world_facts": 2}
    # the paper's arithmetic mean gives another forget statistic (0.515) on the same logs
    assert res["tofu_paper"]["metrics"]["truth_ratio_forget"]["value"] == pytest.approx(0.515)


def test_checker_without_answer_losses_and_cli(tmp_path, capsys):
    """A forget block without ``avg_gt_loss`` still gives the truth ratios (its probability is
    reported as not in the log); the CLI writes the comparison and exits 0 when within."""
    unlearned, retrained = _logs()
    del unlearned["eval_log_forget.json"]["avg_gt_loss"]
    rows = {str(k): v for k, v in enumerate(range(12))}
    assert tpl._rows(rows)[10] == 10  # "10" after "9", not after "1"
    paths = []
    for name, doc in (("u.json", unlearned), ("r.json", retrained)):
        (tmp_path / name).write_text(json.dumps(doc))
        paths.append(str(tmp_path / name))
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({"model_utility": 0.651067, "forget_quality": 5 / 63,
                                  "probability_forget": 0.7}))
    out = tmp_path / "res.json"
    rc = tpl.main(["--unlearned", paths[0], "--retrained", paths[1], "--expect", str(expect),
                   "--out", str(out)])
    assert rc == 0 and "within done-when = True" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["tofu"]["metrics"]["probability_forget"]["value"] is None
