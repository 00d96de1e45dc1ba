"""Celery tasks: thin wrappers that take ids and call services (DESIGN §9)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="requests_app.tasks.job_run_task", acks_late=True, ignore_result=True)
def job_run_task(job_id: int) -> str:
    """Run one unlearning job; a duplicate delivery is a no-op (the claim is a compare-and-set)."""
    from .jobs import job_execute

    return job_execute(job_id=job_id)
