"""Where a queued unlearning job runs (DESIGN §2, §9; issue 21 item 7).

With a broker, ``job_run_task.delay`` sends it to the ``gpu`` queue. In embedded mode
(``CELERY_TASK_ALWAYS_EAGER``) ``delay`` runs the whole job inside the caller, so a portal click
that approved a request waited for the job (~1 min on the demo model). Inside
:func:`jobs_off_request` (the portal's approve and retry views) an eager job instead runs on the
**embedded worker**: a daemon thread of this process, one job at a time (``_EMBEDDED_SLOT``), which
calls the same task. The click redirects at once to the job page, which polls the progress.

``JOBS_EMBEDDED_BACKGROUND=False`` turns the embedded worker off (the job runs in the request, as
before). What the embedded worker does not give: a job of a process that exits mid-run stays
``running`` until its heartbeat times out and it is re-claimed (DESIGN §9), as with a killed worker.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import threading

from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)

_OFF_REQUEST = contextvars.ContextVar("jobs_off_request", default=False)
_EMBEDDED_SLOT = threading.Semaphore(1)


@contextlib.contextmanager
def jobs_off_request():
    """Jobs queued in this block (their on-commit dispatch included) do not run in this thread."""
    token = _OFF_REQUEST.set(True)
    try:
        yield
    finally:
        _OFF_REQUEST.reset(token)


def embedded_job_run(job_id: int) -> None:
    """Run job ``job_id`` as the embedded worker does: one at a time, through the same task."""
    from .tasks import job_run_task

    with _EMBEDDED_SLOT:
        try:
            job_run_task.apply(args=[job_id])
        except Exception:  # noqa: BLE001 - job_execute records failures itself; never kill the thread silently
            log.exception("embedded worker: job %s raised", job_id)


def _embedded_thread_main(job_id: int) -> None:
    try:
        embedded_job_run(job_id)
    finally:
        connections.close_all()  # this thread's own database connections


def embedded_thread_start(job_id: int) -> threading.Thread:
    """Start the embedded worker thread for ``job_id`` (tests replace this to hold the job)."""
    thread = threading.Thread(target=_embedded_thread_main, args=(job_id,), name=f"embedded-job-{job_id}", daemon=True)
    thread.start()
    return thread


def job_dispatch_callback(job_id: int):
    """The on-commit callback that starts job ``job_id``; decides now (inside the caller's context)
    whether it runs off the request."""
    off_request = (_OFF_REQUEST.get() and settings.CELERY_TASK_ALWAYS_EAGER
                   and getattr(settings, "JOBS_EMBEDDED_BACKGROUND", True))

    def dispatch():
        from .tasks import job_run_task

        if off_request:
            embedded_thread_start(job_id)
        else:
            job_run_task.delay(job_id)

    return dispatch
