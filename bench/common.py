"""Helpers shared by the ``bench/`` scripts: machine description, thread setting, plotting."""
from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` when unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict:
    """Machine, versions and thread count, recorded in every benchmark JSON."""
    import importlib.metadata as md

    from evaluation.runners import _environment

    env = _environment()
    env["cpu_model"] = cpu_model()
    env["kernel"] = platform.release()
    for pkg in ("transformers", "peft", "opacus", "numpy"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = None
    try:
        import torch
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a broken CUDA install must not stop a CPU benchmark
        pass
    return env


def set_threads(n: int | None) -> None:
    """Set torch's intra-op thread count (``None`` keeps torch's default)."""
    if n:
        import torch
        torch.set_num_threads(n)


def pyplot():
    """matplotlib's pyplot with the non-interactive Agg backend."""
    from evaluation.runners import _pyplot
    return _pyplot()
