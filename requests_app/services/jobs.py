"""Unlearning-job mutations: comparison jobs, claims, heartbeats, re-queue, cancel, fail, finish."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import selectors
from ..audit import audit_event_record
from ..models import (
    JobStatus,
    ModelVersion,
    RemovalTicket,
    TicketStatus,
    TrainingRecord,
    UnlearningJob,
)
from ..workflow import ALLOWED_TRANSITIONS, TransitionError
from .common import ServiceError, _job_enqueue_on_commit, _ticket_transition, _tickets_advance  # noqa: F401
from .target_models import model_method_check
from .webhooks import webhook_event_emit  # noqa: F401


def job_create_comparison(*, ticket: RemovalTicket, actor, method: str, hyperparameters: dict | None = None) -> UnlearningJob:
    """Run another method on an approved ticket's frozen forget set, evaluated but never published.

    Raises:
        ServiceError: the ticket has no frozen forget set, or the method is unknown.
    """
    from unlearning_engine import available_methods

    if method not in available_methods():
        raise ServiceError(f"unknown method '{method}'")
    if not ticket.resolved_record_ids or ticket.target_model_id is None:
        raise ServiceError("the ticket has no approved forget set")
    model_method_check(ticket.target_model, method)  # issue 14
    first_job = ticket.jobs.order_by("id").first()
    source = first_job.source_version if first_job else selectors.model_serving_version(ticket.target_model)
    with transaction.atomic():
        job = UnlearningJob.objects.create(
            model=ticket.target_model, source_version=source, method=method,
            hyperparameters=hyperparameters or {}, publish=False,
            forget_set_sha256=ticket.forget_set_sha256, forget_count=len(ticket.resolved_record_ids),
        )
        job.tickets.add(ticket)
        audit_event_record(actor=actor, verb="job.comparison_created", obj=job,
                           after={"method": method, "publish": False})
        _job_enqueue_on_commit(job)
    return job



def job_claim(*, job_id: int, worker: str) -> UnlearningJob | None:
    """Claim a job for this worker with a compare-and-set; ``None`` when there is nothing to do.

    ``queued`` → ``running``; also reclaims a ``running``/``evaluating`` job whose heartbeat is older
    than ``JOB_HEARTBEAT_TIMEOUT`` (its worker died; the task was redelivered or re-queued). A live
    duplicate delivery, or a job already finished, is a no-op. After ``JOB_MAX_ATTEMPTS`` claims the
    job is failed instead of run again.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        job = UnlearningJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        reclaim = job.status in (JobStatus.RUNNING, JobStatus.EVALUATING) and (
            job.heartbeat_at is None or job.heartbeat_at < stale
        )
        if job.status != JobStatus.QUEUED and not reclaim:
            return None
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            reason = f"gave up after {job.attempts} attempts (the worker was lost each time)"
            fail = True
        else:
            fail = False
            before = job.status
            UnlearningJob.objects.filter(pk=job_id).update(
                status=JobStatus.RUNNING, worker=worker, started_at=now, heartbeat_at=now,
                attempts=job.attempts + 1,
            )
            job.refresh_from_db()
            audit_event_record(actor=f"worker:{worker}", verb="job.started", obj=job, before={"status": before},
                               after={"status": JobStatus.RUNNING, "attempt": job.attempts, "reclaimed": reclaim})
            if job.publish:
                _tickets_advance(job, TicketStatus.RUNNING, actor=f"worker:{worker}", verb="ticket.running")
    if fail:
        job_fail(job=job, reason=reason)
        return None
    return job


def job_heartbeat(*, job_id: int) -> bool:
    """Record that the job's worker is alive; returns False when the job was cancelled."""
    UnlearningJob.objects.filter(pk=job_id, status__in=[JobStatus.RUNNING, JobStatus.EVALUATING]).update(
        heartbeat_at=timezone.now()
    )
    return UnlearningJob.objects.filter(pk=job_id).values_list("status", flat=True).first() != JobStatus.CANCELLED


def jobs_requeue_stale(*, now=None) -> dict:
    """Re-queue jobs whose worker vanished (no heartbeat for ``JOB_HEARTBEAT_TIMEOUT``), or fail them
    after ``JOB_MAX_ATTEMPTS`` (DESIGN §9); re-send queued jobs untouched for
    ``JOB_QUEUED_RESEND_SECONDS``. Returns ``{"requeued": n, "failed": n[, "resent": n]}``."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    out = {"requeued": 0, "failed": 0}
    candidates = UnlearningJob.objects.filter(status__in=[JobStatus.RUNNING, JobStatus.EVALUATING]).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
    )
    # A queued job whose broker message may have been lost (e.g. Redis restarted without
    # persistence) is sent again; a duplicate delivery is a no-op thanks to the claim.
    resend_before = now - timedelta(seconds=settings.JOB_QUEUED_RESEND_SECONDS)
    for job in UnlearningJob.objects.filter(status=JobStatus.QUEUED).filter(
        Q(heartbeat_at__lt=resend_before) | Q(heartbeat_at__isnull=True, queued_at__lt=resend_before)
    ):
        with transaction.atomic():
            if UnlearningJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(heartbeat_at=now):
                _job_enqueue_on_commit(job)
                out["resent"] = out.get("resent", 0) + 1
    for job in candidates:
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            job_fail(job=job, reason=f"gave up after {job.attempts} attempts (no heartbeat for "
                                     f"{settings.JOB_HEARTBEAT_TIMEOUT} s each time)")
            out["failed"] += 1
            continue
        with transaction.atomic():
            moved = UnlearningJob.objects.filter(pk=job.pk, status=job.status, heartbeat_at=job.heartbeat_at).update(
                status=JobStatus.QUEUED, worker="", heartbeat_at=now
            )
            if not moved:
                continue
            audit_event_record(actor="system", verb="job.requeued", obj=job, before={"status": job.status},
                               after={"status": JobStatus.QUEUED, "reason": "no heartbeat", "attempts": job.attempts})
            _job_enqueue_on_commit(job)
            out["requeued"] += 1
    return out


def job_cancel(*, job: UnlearningJob, actor, reason: str = "cancelled by an operator") -> UnlearningJob:
    """Cancel a queued or running job; its tickets become ``failed`` (retryable). The worker stops
    at its next heartbeat or progress report."""
    with transaction.atomic():
        locked = UnlearningJob.objects.select_for_update().get(pk=job.pk)
        if locked.status not in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.EVALUATING):
            raise TransitionError(f"job is '{locked.status}'", locked.status)
        UnlearningJob.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, error=reason,
                                                       finished_at=timezone.now())
        audit_event_record(actor=actor, verb="job.cancelled", obj=locked, before={"status": locked.status},
                           after={"status": JobStatus.CANCELLED, "reason": reason})
        if locked.publish:
            for ticket in locked.tickets.all():
                if TicketStatus.FAILED in ALLOWED_TRANSITIONS.get(ticket.status, set()):
                    _ticket_transition(ticket, TicketStatus.FAILED, actor=actor, verb="ticket.failed",
                                       fields={"failure_reason": reason})
    locked.refresh_from_db()
    return locked


def job_progress_update(*, job_id: int, progress: dict) -> None:
    """Store progress (step, total, loss, ETA) and the heartbeat; not audited (not a state change)."""
    UnlearningJob.objects.filter(pk=job_id).update(progress=progress, heartbeat_at=timezone.now())


def job_mark_evaluating(*, job: UnlearningJob, result: dict) -> UnlearningJob:
    with transaction.atomic():
        updated = UnlearningJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.EVALUATING, result=result, heartbeat_at=timezone.now()
        )
        if not updated:
            raise TransitionError("job is no longer running", job.status)
        audit_event_record(actor="system", verb="job.evaluating", obj=job,
                           before={"status": JobStatus.RUNNING}, after={"status": JobStatus.EVALUATING})
        if job.publish:
            _tickets_advance(job, TicketStatus.EVALUATING, actor="system", verb="ticket.evaluating")
    job.refresh_from_db()
    return job


def job_fail(*, job: UnlearningJob, reason: str) -> UnlearningJob:
    """Mark the job (and, for publishing jobs, its tickets) ``failed`` with the reason."""
    with transaction.atomic():
        before = UnlearningJob.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        updated = UnlearningJob.objects.filter(
            pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.EVALUATING]
        ).update(status=JobStatus.FAILED, error=reason[:4000], finished_at=timezone.now())
        if not updated:
            return UnlearningJob.objects.get(pk=job.pk)
        audit_event_record(actor="system", verb="job.failed", obj=job, before={"status": before},
                           after={"status": JobStatus.FAILED, "error": reason[:500]})
        if job.publish:
            for ticket in job.tickets.exclude(status__in=[TicketStatus.FAILED, TicketStatus.WITHDRAWN]):
                if TicketStatus.FAILED in ALLOWED_TRANSITIONS.get(ticket.status, set()):
                    _ticket_transition(ticket, TicketStatus.FAILED, actor="system", verb="ticket.failed",
                                       fields={"failure_reason": reason[:4000]})
    job.refresh_from_db()
    return job


def job_finish(
    *,
    job: UnlearningJob,
    artifact_uri: str,
    weights_sha256: str,
    reports: dict,
    verdicts: dict,
    device_seconds: float,
    certificate_builder=None,
):
    """Record the outcome of an evaluated job in one transaction.

    Publishing job whose verdict passed: the new ModelVersion becomes serving (sequence n+1), the
    forgotten records get their tombstone, the certificate is issued and the tickets are certified.
    Comparison job: a ``candidate`` version and the reports, nothing published.
    ``reports`` maps role ("original", "retrained", "unlearned") to (ModelVersion | None, report dict).
    """
    from ..models import Certificate, EvaluationReport

    passed = bool(verdicts.get("passed"))
    with transaction.atomic():
        locked = UnlearningJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != JobStatus.EVALUATING:
            raise TransitionError(f"job is '{locked.status}', not evaluating", locked.status)
        publish = locked.publish and passed
        source = locked.source_version
        version_kwargs = dict(
            model=locked.model, artifact_uri=artifact_uri, weights_sha256=weights_sha256, parent=source,
            produced_by=locked,
        )
        if publish:
            current = ModelVersion.objects.select_for_update().filter(model=locked.model, is_serving=True).first()
            last_seq = max(
                ModelVersion.objects.filter(model=locked.model, sequence__isnull=False).values_list("sequence", flat=True),
                default=0,
            )
            if current:
                ModelVersion.objects.filter(pk=current.pk).update(is_serving=False)
            version = ModelVersion.objects.create(
                role=ModelVersion.ROLE_PUBLISHED, sequence=last_seq + 1, is_serving=True, **version_kwargs
            )
            audit_event_record(actor="system", verb="model_version.published", obj=version,
                               before={"serving": current.pk if current else None},
                               after={"serving": version.pk, "sequence": version.sequence, "weights_sha256": weights_sha256})
        else:
            version = ModelVersion.objects.create(role=ModelVersion.ROLE_CANDIDATE, **version_kwargs)
        for role, (mv, report) in reports.items():
            EvaluationReport.objects.create(
                model_version=version if role == "unlearned" else mv, job=locked, role=role,
                forget_set_sha256=locked.forget_set_sha256, metrics=report.get("metrics", {}),
                profile=report.get("profile", {}),
                reference_type=verdicts.get("privleak", {}).get("reference_type", "") if role == "unlearned" else "",
                verdicts=verdicts if role == "unlearned" else {},
                passed=passed if role == "unlearned" else None,
            )
        status = JobStatus.SUCCEEDED if (passed or not locked.publish) else JobStatus.FAILED
        error = "" if status == JobStatus.SUCCEEDED else "evaluation verdict failed: " + ", ".join(
            c["name"] for c in verdicts.get("checks", []) if not c.get("passed")
        )
        UnlearningJob.objects.filter(pk=locked.pk).update(
            status=status, finished_at=timezone.now(), device_seconds=device_seconds, error=error
        )
        audit_event_record(actor="system", verb="job.finished", obj=locked, before={"status": JobStatus.EVALUATING},
                           after={"status": status, "verdict_passed": passed, "version": version.pk})
        certificate = None
        if publish:
            record_ids = set()
            for ticket in locked.tickets.all():
                record_ids.update(ticket.resolved_record_ids)
            now = timezone.now()
            TrainingRecord.objects.filter(pk__in=record_ids, forgotten_by__isnull=True).update(
                forgotten_by=locked, forgotten_at=now
            )
            audit_event_record(actor="system", verb="records.forgotten", obj=locked,
                               after={"count": len(record_ids), "forget_set_sha256": locked.forget_set_sha256})
            locked.refresh_from_db()
            document = certificate_builder(job=locked, version=version, verdicts=verdicts, reports=reports)
            certificate = Certificate.objects.create(
                public_id=document["payload"]["certificate_id"], job=locked, payload=document["payload"], signature=document["signature"],
                key_id=document["key_id"], algorithm=document["algorithm"],
                issued_at=now,
            )
            audit_event_record(actor="system", verb="certificate.issued", obj=certificate,
                               after={"job": str(locked.public_id), "key_id": certificate.key_id})
            webhook_event_emit(event="certificate.issued", payload={
                "certificate": str(certificate.public_id), "job": str(locked.public_id),
                "tickets": [str(t.public_id) for t in locked.tickets.all()]})
            for ticket in locked.tickets.all():
                _ticket_transition(ticket, TicketStatus.CERTIFIED, actor="system", verb="ticket.certified")
        elif locked.publish:
            for ticket in locked.tickets.all():
                _ticket_transition(ticket, TicketStatus.FAILED, actor="system", verb="ticket.failed",
                                   fields={"failure_reason": error})
    return version, certificate
