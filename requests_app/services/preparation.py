"""Preparation jobs (issue 14): corpus ingestion, DP base, exact-retrain reference.

The same exactly-once rules as unlearning jobs (DESIGN §9, ``services/jobs.py``): a worker claims a
job with a compare-and-set (``queued`` → ``running``, or a ``running`` job whose heartbeat is older
than ``JOB_HEARTBEAT_TIMEOUT``), a live duplicate delivery is a no-op, after ``JOB_MAX_ATTEMPTS``
claims the job fails. Every state change writes its audit event in the same transaction.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..audit import audit_event_record
from ..models import JobStatus, PreparationJob, TargetModel
from ..workflow import TransitionError
from .common import LOST_WORKER_HINT, ServiceError

#: Celery queues: DP/retrain training needs the accelerator, ingestion does not.
QUEUE_FOR_KIND = {PreparationJob.KIND_CORPUS_INGEST: "default", PreparationJob.KIND_DP_BASE: "gpu",
                  PreparationJob.KIND_REFERENCE: "gpu", PreparationJob.KIND_CALIBRATION: "gpu"}
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def preparation_enqueue_on_commit(job: PreparationJob) -> None:
    """Send ``preparation_run_task(job.pk)`` to the kind's queue once the transaction commits."""
    from ..tasks import preparation_run_task

    queue = QUEUE_FOR_KIND[job.kind]
    transaction.on_commit(lambda: preparation_run_task.apply_async(args=[job.pk], queue=queue))


def preparation_create(*, actor, kind: str, model: TargetModel, params: dict | None = None) -> PreparationJob:
    """Queue a ``dp_base``, ``reference`` or ``calibration`` job for ``model`` (checks by the caller:
    ``target_models.model_prepare``, ``calibration.model_calibrate``).

    Raises:
        ServiceError: unknown kind, or the same kind already queued/running for this model (a
            second DP base run would race the first).
    """
    if kind not in (PreparationJob.KIND_DP_BASE, PreparationJob.KIND_REFERENCE, PreparationJob.KIND_CALIBRATION):
        raise ServiceError(f"unknown preparation '{kind}'; choose dp_base or reference")
    from .corpora import _actor

    with transaction.atomic():
        TargetModel.objects.select_for_update().filter(pk=model.pk).first()
        busy = PreparationJob.objects.filter(model=model, kind=kind, status__in=ACTIVE)
        if kind == PreparationJob.KIND_DP_BASE and busy.exists():
            raise ServiceError(f"a dp_base preparation of model '{model.name}' is already {busy.first().status}")
        job = PreparationJob.objects.create(kind=kind, model=model, corpus=model.corpus, params=params or {},
                                            requested_by=_actor(actor))
        audit_event_record(actor=actor, verb=f"preparation.{kind}_requested", obj=job,
                           after={"model": model.name, "params": params or {}})
        preparation_enqueue_on_commit(job)
    return job


def preparation_claim(*, job_id: int, worker: str) -> PreparationJob | None:
    """Claim with a compare-and-set; ``None`` when there is nothing to do (duplicate delivery,
    finished job, or a job failed here after ``JOB_MAX_ATTEMPTS``)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        job = PreparationJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        reclaim = job.status == JobStatus.RUNNING and (job.heartbeat_at is None or job.heartbeat_at < stale)
        if job.status != JobStatus.QUEUED and not reclaim:
            return None
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            give_up = f"gave up after {job.attempts} attempts (the worker was lost each time)" + LOST_WORKER_HINT
        else:
            give_up = ""
            before = job.status
            PreparationJob.objects.filter(pk=job_id).update(
                status=JobStatus.RUNNING, worker=worker, started_at=now, heartbeat_at=now, attempts=job.attempts + 1)
            job.refresh_from_db()
            audit_event_record(actor=f"worker:{worker}", verb="preparation.started", obj=job,
                               before={"status": before},
                               after={"status": JobStatus.RUNNING, "attempt": job.attempts, "reclaimed": reclaim})
    if give_up:
        preparation_fail(job=job, reason=give_up)
        return None
    return job


def preparation_heartbeat(*, job_id: int) -> bool:
    """Record that the worker is alive; False when the job is no longer running (cancelled/failed)."""
    return bool(PreparationJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now()))


def preparation_progress_update(*, job_id: int, progress: dict) -> bool:
    """Store progress (phase, step, total, ETA) and the heartbeat; not audited. False when not running."""
    return bool(PreparationJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        progress=progress, heartbeat_at=timezone.now()))


def preparation_fail(*, job: PreparationJob, reason: str, result: dict | None = None) -> PreparationJob:
    """Mark a queued/running job ``failed`` with the reason (and e.g. the validation report)."""
    with transaction.atomic():
        before = PreparationJob.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        fields = {"status": JobStatus.FAILED, "error": reason[:4000], "finished_at": timezone.now()}
        if result is not None:
            fields["result"] = result
        if PreparationJob.objects.filter(pk=job.pk, status__in=ACTIVE).update(**fields):
            audit_event_record(actor="system", verb="preparation.failed", obj=job, before={"status": before},
                               after={"status": JobStatus.FAILED, "error": reason[:500]})
    job.refresh_from_db()
    return job


def preparation_cancel(*, job: PreparationJob, actor, reason: str = "cancelled by an operator") -> PreparationJob:
    """Cancel a queued or running job; the worker stops at its next progress report."""
    with transaction.atomic():
        locked = PreparationJob.objects.select_for_update().get(pk=job.pk)
        if locked.status not in ACTIVE:
            raise TransitionError(f"preparation is '{locked.status}'", locked.status)
        PreparationJob.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, error=reason,
                                                        finished_at=timezone.now())
        audit_event_record(actor=actor, verb="preparation.cancelled", obj=locked, before={"status": locked.status},
                           after={"status": JobStatus.CANCELLED, "reason": reason})
    locked.refresh_from_db()
    return locked


def preparation_succeed(*, job: PreparationJob, result: dict, device_seconds: float, apply=None) -> PreparationJob:
    """Finish a running job: ``apply(locked_job)`` (the registration of what it produced) runs in
    the same transaction as the status change and the audit event, so a lost race (the job was
    cancelled or re-claimed meanwhile) registers nothing.

    Raises:
        TransitionError: the job is no longer running.
    """
    with transaction.atomic():
        locked = PreparationJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != JobStatus.RUNNING:
            raise TransitionError(f"preparation is '{locked.status}', not running", locked.status)
        extra = apply(locked) if apply else None
        result = {**result, **(extra or {})}
        PreparationJob.objects.filter(pk=job.pk).update(
            status=JobStatus.SUCCEEDED, result=result, finished_at=timezone.now(), device_seconds=device_seconds,
            error="")
        audit_event_record(actor="system", verb="preparation.succeeded", obj=locked,
                           before={"status": JobStatus.RUNNING},
                           after={"status": JobStatus.SUCCEEDED, "kind": locked.kind,
                                  "result": result})
    job.refresh_from_db()
    return job


def preparations_requeue_stale(*, now=None) -> dict:
    """Re-queue running preparations without a heartbeat for ``JOB_HEARTBEAT_TIMEOUT`` (or fail
    them after ``JOB_MAX_ATTEMPTS``). Returns ``{"requeued": n, "failed": n}``."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    out = {"requeued": 0, "failed": 0}
    for job in PreparationJob.objects.filter(status=JobStatus.RUNNING).filter(
            Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)):
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            preparation_fail(job=job, reason=f"gave up after {job.attempts} attempts (no heartbeat)" + LOST_WORKER_HINT)
            out["failed"] += 1
            continue
        with transaction.atomic():
            if PreparationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, heartbeat_at=job.heartbeat_at).update(
                    status=JobStatus.QUEUED, worker="", heartbeat_at=now):
                audit_event_record(actor="system", verb="preparation.requeued", obj=job,
                                   before={"status": JobStatus.RUNNING}, after={"status": JobStatus.QUEUED})
                preparation_enqueue_on_commit(job)
                out["requeued"] += 1
    return out
