"""Progress lines for people watching a terminal or a worker log (issue 21 item 17).

The database keeps a job's progress for the API and the dashboard; these lines are for the
operator's terminal (``manage.py demo``, ``model_prepare``) and the worker log: at most one every
``every_s`` seconds (default 10) plus the last step, each with the stage, step/total, the loss and
the ETA.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger("requests_app.progress")


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def progress_line(progress, label: str = "") -> str:
    """One line for a :class:`unlearning_engine.training.Progress`: ``"[label] phase step 3/39
    (8 %), loss 1.234, ETA 4 min 05 s"``."""
    pct = 100.0 * progress.step / progress.total if progress.total else 0.0
    head = f"[{label}] " if label else ""
    return (f"{head}{progress.phase} step {progress.step}/{progress.total} ({pct:.0f} %), "
            f"loss {float(progress.loss):.3f}, ETA {_duration(progress.eta_seconds)}")


class ProgressLog:
    """A ``progress`` callback that emits :func:`progress_line` at most every ``every_s`` seconds
    (and always for the last step). ``emit`` defaults to ``logger.info``."""

    def __init__(self, label: str = "", every_s: float = 10.0, emit: Callable[[str], None] | None = None):
        self.label, self.every_s, self.emit = label, every_s, emit or logger.info
        self._last = float("-inf")

    def __call__(self, progress) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s and progress.step < progress.total:
            return
        self._last = now
        self.emit(progress_line(progress, self.label))
