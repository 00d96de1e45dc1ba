"""Unlearning-job mutations: comparison jobs, claims, heartbeats, re-queue, cancel, fail, finish."""
from __future__ import annotations

from datetime import datetime, timedelta

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
from .common import (  # noqa: F401
    LOST_WORKER_HINT,
    ServiceError,
    _job_enqueue_on_commit,
    _ticket_transition,
    _tickets_advance,
)
from .target_models import model_method_check
from .webhooks import webhook_event_emit  # noqa: F401


def job_create_comparison(*, ticket: RemovalTicket, actor, method: str, hyperparameters: dict | None = None) -> UnlearningJob:
    """Run another method on an approved ticket's frozen forget set, evaluated but never published.

    Raises:
        ServiceError: the ticket has no frozen forget set, or the method is unknown.
    """
    from unlearning_engine import available_methods

    if method not in available_methods(None):
        raise ServiceError(f"unknown method '{method}'")
    if not ticket.resolved_record_ids or ticket.target_model_id is None:
        raise ServiceError("the ticket has no approved forget set")
    if ticket.status in (TicketStatus.WITHDRAWN, TicketStatus.DENIED):
        raise ServiceError(f"the ticket is '{ticket.status}'; its forget set may not be processed")
    from .approval import hyperparameters_check

    hyperparameters_check(model=ticket.target_model, method=method, hyperparameters=hyperparameters)
    model_method_check(ticket.target_model, method)  # issue 14
    first_job = ticket.jobs.order_by("id").first()
    source = first_job.source_version if first_job else selectors.model_serving_version(ticket.target_model)
    if source is None:
        raise ServiceError(f"model '{ticket.target_model.name}' has no serving version")
    from .manifests import ticket_manifest_check

    ticket_manifest_check(ticket=ticket, weights_sha256=source.weights_sha256)  # issue 23: 400 before a job
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
    job is failed instead of run again. A job that can never run (a publishing job none of whose
    tickets may move to ``running``, e.g. all withdrawn; a comparison job of a withdrawn or denied
    ticket) ends ``failed`` with the reason instead of staying ``queued`` and being re-sent forever.
    """
    try:
        return _job_claim(job_id=job_id, worker=worker)
    except TransitionError as exc:  # the claim's transaction was rolled back: nothing half-done
        job = UnlearningJob.objects.filter(pk=job_id).first()
        if job is not None:
            job_fail(job=job, reason=f"the job cannot run: {exc}")
        return None


def _job_unrunnable_reason(job: UnlearningJob) -> str | None:
    """Why ``job`` can never run (``None`` when it can)."""
    statuses = list(job.tickets.values_list("public_id", "status"))
    if not statuses:
        return "it has no ticket"
    dead = [(str(pid), st) for pid, st in statuses if st in (TicketStatus.WITHDRAWN, TicketStatus.DENIED)]
    if not job.publish and dead:
        return f"ticket {dead[0][0]} is '{dead[0][1]}'"
    if job.publish and len(dead) == len(statuses):
        return "every ticket of the job is withdrawn or denied"
    return None


def _job_claim(*, job_id: int, worker: str) -> UnlearningJob | None:
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
        unrunnable = _job_unrunnable_reason(job)
        if unrunnable:
            reason = f"the job cannot run: {unrunnable}"
            fail = True
        elif job.attempts >= settings.JOB_MAX_ATTEMPTS:
            reason = f"gave up after {job.attempts} attempts (the worker was lost each time)" + LOST_WORKER_HINT
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
                                     f"{settings.JOB_HEARTBEAT_TIMEOUT} s each time)" + LOST_WORKER_HINT)
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


_LIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.EVALUATING)


def jobs_lock_live_of_ticket(*, ticket: RemovalTicket) -> list[int]:
    """``SELECT ... FOR UPDATE`` the ticket's unfinished jobs (only the job rows); returns their ids."""
    return list(UnlearningJob.objects.select_for_update(of=("self",))
                .filter(tickets=ticket, status__in=_LIVE_JOB_STATUSES).values_list("pk", flat=True))


def jobs_detach_withdrawn_ticket(*, ticket: RemovalTicket, actor) -> list[UnlearningJob]:
    """Let the not-yet-finished jobs of a just-withdrawn ticket go of it (issue 13 item 6).

    Must run inside the withdrawal's transaction. A job with no other live ticket (or a comparison
    job) ends ``cancelled`` and keeps the ticket for the record; a batch job with other live tickets
    drops it and gets its forget-set digest and count recomputed from the remaining tickets. Each
    change is audited. Returns the jobs touched.
    """
    from ..models import TrainingRecord
    from .common import forget_set_digest

    touched = []
    for job in UnlearningJob.objects.filter(pk__in=jobs_lock_live_of_ticket(ticket=ticket)):
        others = job.tickets.exclude(pk=ticket.pk).exclude(
            status__in=[TicketStatus.WITHDRAWN, TicketStatus.DENIED])
        if not job.publish or not others.exists():
            reason = f"ticket {ticket.public_id} was withdrawn"
            UnlearningJob.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, error=reason,
                                                           finished_at=timezone.now())
            audit_event_record(actor=actor, verb="job.cancelled", obj=job, before={"status": job.status},
                               after={"status": JobStatus.CANCELLED, "reason": reason})
        else:
            job.tickets.remove(ticket)
            ids = sorted({i for t in others for i in t.resolved_record_ids})
            digest = forget_set_digest(list(TrainingRecord.objects.filter(pk__in=ids).values_list("sha256", flat=True)))
            UnlearningJob.objects.filter(pk=job.pk).update(forget_set_sha256=digest, forget_count=len(ids))
            audit_event_record(actor=actor, verb="job.ticket_detached", obj=job,
                               before={"forget_set_sha256": job.forget_set_sha256, "forget_count": job.forget_count},
                               after={"ticket": str(ticket.public_id), "forget_set_sha256": digest,
                                      "forget_count": len(ids)})
        touched.append(job)
    return touched


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


def method_changes_weights(method: str, family: str | None = None) -> bool:
    """Whether the engine's method ``method`` declares that it changes the weights
    (``Method.changes_weights``, DESIGN §5; ``eco`` does not), for ``family`` or (None) for every
    family it serves (DESIGN §11). Unknown methods: False."""
    from unlearning_engine.methods import method_class, method_families

    families = [family] if family else method_families(method)
    classes = [method_class(method, f) for f in families]
    return bool(classes) and all(c is not None and c.changes_weights for c in classes)


def erasure_method_check(method: str) -> None:
    """Refuse a method that cannot erase for an erasure request (approval, retry).

    Decision (issue 12): approving ``eco`` — or any method with ``changes_weights=False`` — for an
    erasure ticket is a 400, because inference-time suppression leaves the data in the weights and
    GDPR Art. 17 / CCPA §1798.105 ask for deletion; ``eco`` stays available as a comparison job
    (``POST /tickets/{id}/compare/``), which never publishes anything.

    Raises:
        ServiceError: the method does not change weights.
    """
    from unlearning_engine import available_methods

    if method in available_methods(None) and not method_changes_weights(method):
        erasing = ", ".join(m for m in available_methods(None) if method_changes_weights(m))
        raise ServiceError(
            f"method '{method}' does not change the model's weights (inference-time suppression): it cannot "
            f"fulfil an erasure request and never earns an erasure certificate; choose one of {erasing}, "
            f"or run '{method}' as a comparison job")


def job_weights_unchanged_reason(job: UnlearningJob, weights_sha256: str) -> str | None:
    """Why the job's result does not count as a weight change, or ``None`` when it does.

    All three must hold for an erasure certificate: the method declares ``changes_weights``,
    the engine's result says ``changes_weights`` (``job.result``), and the new weights sha256
    differs from the source version's.
    """
    if not method_changes_weights(job.method):
        return f"method '{job.method}' does not change weights (inference-time suppression)"
    if (job.result or {}).get("changes_weights") is not True:
        return f"the engine did not report a weight change for method '{job.method}'"
    if job.source_version is not None and weights_sha256 == job.source_version.weights_sha256:
        return f"the weights sha256 after the job equals the source version's ({weights_sha256[:16]}...)"
    return None


def job_finish(
    *,
    job: UnlearningJob,
    artifact_uri: str,
    weights_sha256: str,
    reports: dict,
    verdicts: dict,
    device_seconds: float,
    certificate_builder=None,
    notice_builder=None,
):
    """Record the outcome of an evaluated job in one transaction.

    Publishing job whose verdict passed and whose weights changed
    (:func:`job_weights_unchanged_reason` is ``None``): the new ModelVersion becomes serving
    (sequence n+1), the forgotten records get their tombstone, the erasure certificate is issued
    and the tickets are certified.
    Publishing job whose weights did not change: never an erasure certificate. The version stays a
    ``candidate``, no record is tombstoned, the job and its tickets end ``failed`` with the reason
    (retryable with a weight-changing method: the erasure obligation is not met, so neither
    ``certified`` nor a terminal state is true), and when the verdict passed a signed
    *suppression notice* (``notice_builder``, default
    :func:`requests_app.certificates.suppression_notice_build`) records what was measured.
    Comparison job: a ``candidate`` version and the reports, nothing published.
    ``reports`` maps role ("original", "retrained", "unlearned") to (ModelVersion | None, report dict).
    Returns (version, Certificate | None).
    """
    from ..models import EvaluationReport

    passed = bool(verdicts.get("passed"))
    with transaction.atomic():
        locked = UnlearningJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != JobStatus.EVALUATING:
            raise TransitionError(f"job is '{locked.status}', not evaluating", locked.status)
        unchanged = job_weights_unchanged_reason(locked, weights_sha256)
        publish = locked.publish and passed and unchanged is None
        version = _finish_version(locked, artifact_uri, weights_sha256, publish)
        for role, (mv, report) in reports.items():
            EvaluationReport.objects.create(
                model_version=version if role == "unlearned" else mv, job=locked, role=role,
                forget_set_sha256=locked.forget_set_sha256, manifest_sha256=report.get("manifest_sha256", ""),
                metrics=report.get("metrics", {}),
                profile=report.get("profile", {}),
                reference_type=(verdicts.get("reference_type") or verdicts.get("privleak", {}).get("reference_type", "")
                                if role == "unlearned" else ""),
                verdicts=verdicts if role == "unlearned" else {},
                passed=passed if role == "unlearned" else None,
            )
        status, error = _finish_status(locked, passed, unchanged, verdicts)
        UnlearningJob.objects.filter(pk=locked.pk).update(
            status=status, finished_at=timezone.now(), device_seconds=device_seconds, error=error
        )
        audit_event_record(actor="system", verb="job.finished", obj=locked, before={"status": JobStatus.EVALUATING},
                           after={"status": status, "verdict_passed": passed, "version": version.pk,
                                  "weights_changed": unchanged is None})
        certificate = None
        if publish:
            certificate = _finish_certify(locked, version, verdicts, reports, certificate_builder)
        elif locked.publish:
            if unchanged is not None and passed:
                locked.refresh_from_db()
                if notice_builder is None:
                    from ..certificates import suppression_notice_build as notice_builder
                document = notice_builder(job=locked, version=version, verdicts=verdicts, reports=reports,
                                          reason=unchanged)
                certificate = _certificate_store(locked, document, "suppression_notice")
            for ticket in locked.tickets.all():
                _ticket_transition(ticket, TicketStatus.FAILED, actor="system", verb="ticket.failed",
                                   fields={"failure_reason": error})
    return version, certificate


def _finish_version(locked: UnlearningJob, artifact_uri: str, weights_sha256: str, publish: bool) -> ModelVersion:
    version_kwargs = dict(model=locked.model, artifact_uri=artifact_uri, weights_sha256=weights_sha256,
                          parent=locked.source_version, produced_by=locked)
    if not publish:
        return ModelVersion.objects.create(role=ModelVersion.ROLE_CANDIDATE, **version_kwargs)
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
    return version


def _finish_status(locked: UnlearningJob, passed: bool, unchanged: str | None, verdicts: dict) -> tuple[str, str]:
    if not locked.publish:
        return JobStatus.SUCCEEDED, ""
    if unchanged is not None:
        notice = ("a suppression notice was issued instead" if passed
                  else "evaluation verdict failed: " + ", ".join(
                      c["name"] for c in verdicts.get("checks", []) if not c.get("passed")))
        return JobStatus.FAILED, (f"suppression only, not erasure: {unchanged}; the weights still hold the data, "
                                  f"no erasure certificate ({notice}); retry with a weight-changing method")
    if passed:
        return JobStatus.SUCCEEDED, ""
    return JobStatus.FAILED, "evaluation verdict failed: " + ", ".join(
        c["name"] for c in verdicts.get("checks", []) if not c.get("passed"))


def _certificate_store(locked: UnlearningJob, document: dict, document_type: str):
    from evaluation.audit_log import payload_digest
    from evaluation.certificate import canonical_json

    from ..audit_log import audit_certificate_transparency
    from ..models import Certificate

    certificate = Certificate.objects.create(
        public_id=document["payload"]["certificate_id"], job=locked, document_type=document_type,
        payload=document["payload"], signed_payload=canonical_json(document["payload"]).decode("utf-8"),
        signature=document["signature"], key_id=document["key_id"], algorithm=document["algorithm"],
        issued_at=datetime.fromisoformat(document["payload"]["issued_at"]),
    )
    verb = "certificate.issued" if document_type == "erasure_certificate" else "suppression_notice.issued"
    event = audit_event_record(actor="system", verb=verb, obj=certificate,
                               after={"job": str(locked.public_id), "key_id": certificate.key_id,
                                      "document_type": document_type,
                                      "payload_sha256": payload_digest(document["payload"])})
    # seal inside the issuing transaction: the certificate, its issuance event, the leaves and the
    # signed tree head commit (or roll back) together, so no stored certificate lacks its proof
    certificate.transparency = audit_certificate_transparency(event)
    Certificate.objects.filter(pk=certificate.pk).update(transparency=certificate.transparency)
    return certificate


def _finish_certify(locked: UnlearningJob, version, verdicts: dict, reports: dict, certificate_builder):
    record_ids = set()
    for ticket in locked.tickets.all():
        record_ids.update(ticket.resolved_record_ids)
    TrainingRecord.objects.filter(pk__in=record_ids, forgotten_by__isnull=True).update(
        forgotten_by=locked, forgotten_at=timezone.now()
    )
    audit_event_record(actor="system", verb="records.forgotten", obj=locked,
                       after={"count": len(record_ids), "forget_set_sha256": locked.forget_set_sha256})
    locked.refresh_from_db()
    if certificate_builder is None:
        from ..certificates import certificate_build as certificate_builder
    document = certificate_builder(job=locked, version=version, verdicts=verdicts, reports=reports)
    certificate = _certificate_store(locked, document, "erasure_certificate")
    webhook_event_emit(event="certificate.issued", payload={
        "certificate": str(certificate.public_id), "job": str(locked.public_id),
        "tickets": [str(t.public_id) for t in locked.tickets.all()]})
    for ticket in locked.tickets.all():
        _ticket_transition(ticket, TicketStatus.CERTIFIED, actor="system", verb="ticket.certified")
    return certificate
