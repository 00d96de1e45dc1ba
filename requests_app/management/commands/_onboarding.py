"""Shared helpers of the onboarding commands (``corpus_ingest``, ``model_register``, ``model_prepare``)."""
from __future__ import annotations

import time

from django.core.management.base import CommandError

from requests_app.models import JobStatus, PreparationJob

FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def wait_for_preparation(job: PreparationJob, *, timeout: float, write) -> PreparationJob:
    """Poll the job until it ends (in embedded mode it already ran in-process); print progress.

    Raises:
        CommandError: the job failed or was cancelled, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        job.refresh_from_db()
        if job.progress != last and job.progress:
            last = job.progress
            write(f"  {job.kind}: {job.status} {job.progress}")
        if job.status in FINAL:
            break
        if time.monotonic() > deadline:
            raise CommandError(f"preparation {job.public_id} still {job.status} after {timeout:.0f} s")
        time.sleep(1.0)
    write(f"preparation {job.public_id} ({job.kind}) {job.status} in {job.device_seconds or 0:.1f} s")
    if job.status != JobStatus.SUCCEEDED:
        raise CommandError(f"preparation {job.kind} {job.status}: {job.error}")
    return job
