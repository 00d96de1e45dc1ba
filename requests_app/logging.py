"""Structured logs: JSON lines carrying the ticket and job the code is working on.

The ids live in context variables, set by the API views (the ticket or job of the URL) and by
``jobs.job_execute`` (the job and its tickets) with :func:`log_context`. :class:`ContextFilter`
copies them onto every record (``record.ticket_id``, ``record.job_id``) so a plain format can print
them too; :class:`JsonFormatter` writes one JSON object per line. Enabled by ``LOG_FORMAT=json``
(settings ``LOGGING``), in the web process and in the Celery worker alike.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging

ticket_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ticket_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

#: attributes every LogRecord has; anything else on a record was passed through ``extra=``
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


@contextlib.contextmanager
def log_context(*, ticket_id=None, job_id=None):
    """Within the block, log records carry ``ticket_id`` / ``job_id`` (``None`` leaves a value as is).

    Several tickets (a batched job) are joined with commas.
    """
    tokens = []
    if ticket_id is not None:
        if isinstance(ticket_id, list | tuple | set):
            ticket_id = ",".join(sorted(str(t) for t in ticket_id))
        tokens.append((ticket_id_var, ticket_id_var.set(str(ticket_id))))
    if job_id is not None:
        tokens.append((job_id_var, job_id_var.set(str(job_id))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


@contextlib.contextmanager
def log_scope(*, ticket_id=None, job_id=None):
    """A fresh scope (one API request): both ids set (``None`` when absent), restored on exit, so
    nothing set inside (e.g. by :func:`log_context_set` once a ticket is created) leaks past it."""
    tokens = [(ticket_id_var, ticket_id_var.set(str(ticket_id) if ticket_id else None)),
              (job_id_var, job_id_var.set(str(job_id) if job_id else None))]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def log_context_set(*, ticket_id=None, job_id=None) -> None:
    """Set the ids for the rest of the current context (a request's thread, a task run)."""
    if ticket_id is not None:
        ticket_id_var.set(str(ticket_id))
    if job_id is not None:
        job_id_var.set(str(job_id))


def log_context_clear() -> None:
    ticket_id_var.set(None)
    job_id_var.set(None)


class ContextFilter(logging.Filter):
    """Adds ``ticket_id`` and ``job_id`` (or ``None``) to every record; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "ticket_id", None) is None:
            record.ticket_id = ticket_id_var.get()
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, ticket_id, job_id,
    process, thread, the ``extra=`` fields and, for an exception, ``exc_info`` (the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        ContextFilter().filter(record)  # also correct when the handler has no filter (e.g. Celery's)
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "ticket_id": record.ticket_id,
            "job_id": record.job_id,
            "process": record.process,
            "thread": record.threadName,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)
