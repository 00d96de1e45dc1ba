"""Re-queueing a failed erasure request with a new job (``ticket_retry``), split from ``tickets``."""
from __future__ import annotations

from django.db import transaction

from .. import selectors
from ..audit import audit_event_record
from ..models import RemovalTicket, TicketStatus, UnlearningJob
from .approval import hyperparameters_check
from .common import ServiceError, _job_enqueue_on_commit, _ticket_transition
from .jobs import erasure_method_check
from .manifests import ticket_manifest_check
from .target_models import model_family_check

__all__ = ["ticket_retry"]


def ticket_retry(*, ticket: RemovalTicket, actor, method: str | None = None,
                 hyperparameters: dict | None = None) -> UnlearningJob:
    """An operator re-queues a failed ticket with a new job (another method or stronger settings)."""
    from unlearning_engine import available_methods

    previous = ticket.jobs.filter(publish=True).order_by("-id").first()
    method = method or (previous.method if previous else "dp2")
    if method not in available_methods(None):
        raise ServiceError(f"unknown method '{method}'")
    if ticket.target_model_id is None or not ticket.resolved_record_ids:
        raise ServiceError("the ticket has no approved forget set")
    model_family_check(ticket.target_model, method)
    erasure_method_check(method)
    hyperparameters_check(model=ticket.target_model, method=method, hyperparameters=(
        hyperparameters if hyperparameters is not None else (previous.hyperparameters if previous else {})))
    source = selectors.model_serving_version(ticket.target_model)
    if source is None:
        raise ServiceError(f"model '{ticket.target_model.name}' has no serving version")
    ticket_manifest_check(ticket=ticket, weights_sha256=source.weights_sha256)
    with transaction.atomic():
        _ticket_transition(ticket, TicketStatus.QUEUED, actor=actor, verb="ticket.retried",
                           sources=[TicketStatus.FAILED], fields={"failure_reason": ""})
        job = UnlearningJob.objects.create(
            model=ticket.target_model, source_version=source, method=method,
            hyperparameters=hyperparameters if hyperparameters is not None else (previous.hyperparameters if previous else {}),
            forget_set_sha256=ticket.forget_set_sha256, forget_count=len(ticket.resolved_record_ids),
        )
        job.tickets.add(ticket)
        audit_event_record(actor=actor, verb="job.created", obj=job,
                           after={"method": method, "retry_of": str(previous.public_id) if previous else None})
        _job_enqueue_on_commit(job)
    return job
