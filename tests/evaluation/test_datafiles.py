"""Where the benchmark data is looked up (evaluation.datafiles.default_data_dir)."""
from __future__ import annotations

from pathlib import Path

from evaluation.datafiles import default_data_dir


def test_env_variable_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNING_DATA_DIR", str(tmp_path))
    assert default_data_dir("tofu") == tmp_path / "tofu"


def test_checkout_outside_work_still_finds_the_shared_data(monkeypatch):
    """Regression: a clone outside /work (CI's clean clone) looked for ../shared/data beside
    itself only, so every TOFU-backed test was skipped."""
    monkeypatch.delenv("UNLEARNING_DATA_DIR", raising=False)
    d = default_data_dir("tofu")
    beside = Path(__file__).resolve().parents[3] / "shared" / "data" / "tofu"
    if beside.is_dir():
        assert d == beside
    elif Path("/work/shared/data/tofu").is_dir():
        assert d == Path("/work/shared/data/tofu")
    else:
        assert d == beside
