"""What an approval may take: the right person, the right records, sane settings (issue 13 items 1, 2, 7).

- :func:`approval_check_people`: identity verified (DESIGN §4 "no approval before verification")
  and, under ``FOUR_EYES_APPROVAL``, a recorded reviewer (and resolution confirmer) who is not
  the approver.
- :func:`ticket_confirm_resolution`: the reviewer confirms which records of the resolution the
  request covers (DESIGN §4 "Resolution"); stored on the ticket and audited.
- :func:`approval_forget_records`: the forget set must lie inside the ticket's resolution
  (provenance links of the subject plus reviewer-confirmed content matches).
- :func:`hyperparameters_check`: the job's effective hyper-parameters (model recipe ← request)
  validated by the method, within :data:`unlearning_engine.hparams.BOUNDS`.
"""
from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..audit import audit_event_record
from ..models import RemovalTicket, TargetModel, TicketStatus, TrainingRecord
from ..workflow import TransitionError
from .common import PermissionDeniedError, ServiceError

__all__ = [
    "approval_check_people", "approval_forget_records", "hyperparameters_check", "resolution_split",
    "ticket_confirm_resolution", "forget_set_audit_entries",
]


def approval_check_people(*, ticket: RemovalTicket, approver) -> None:
    """Refuse an approval by the wrong person or of an unverified request.

    Raises:
        ServiceError: ``identity_verified_at`` is not set (e.g. a ticket released from a hold
            taken before verification).
        PermissionDeniedError: four-eyes policy and no reviewer recorded, or the approver is the
            reviewer or the one who confirmed the resolution.
    """
    if ticket.identity_verified_at is None:
        raise ServiceError("the requester's identity is not verified; a request cannot be approved before "
                           "verification (DESIGN §4)")
    if not settings.FOUR_EYES_APPROVAL:
        return
    if ticket.reviewed_by_id is None:
        raise PermissionDeniedError("four-eyes policy: no reviewer has taken this ticket (POST .../review/ by "
                                    "another member of the legal team first)")
    if ticket.reviewed_by_id == approver.pk:
        raise PermissionDeniedError("four-eyes policy: the reviewer of a ticket cannot also approve it")
    if ticket.resolution_confirmed_by_id is not None and ticket.resolution_confirmed_by_id == approver.pk:
        raise PermissionDeniedError("four-eyes policy: the person who confirmed the resolution cannot also "
                                    "approve it")


def resolution_split(*, ticket: RemovalTicket, model: TargetModel) -> tuple[set[int], set[int]]:
    """(provenance-linked ids, content-match ids) of the ticket's current resolution on ``model``."""
    linked, content = set(), set()
    for record in selectors.ticket_resolution(ticket=ticket, model=model):
        # a request naming nobody found has only content matches (issue 21 item 3)
        is_linked = ticket.subject_id is not None and record.subject_id == ticket.subject_id
        (linked if is_linked else content).add(record.pk)
    return linked, content


def _ticket_model(ticket: RemovalTicket, model: TargetModel | None) -> TargetModel:
    model = model or ticket.target_model or selectors.model_default()
    if model is None:
        raise ServiceError("no target model registered")
    return model


def forget_set_audit_entries(records) -> list[dict]:
    """``[{"id", "sha256"}, ...]`` sorted by id: what an audit event shows of a record set."""
    return [{"id": r.pk, "sha256": r.sha256} for r in sorted(records, key=lambda r: r.pk)]


def ticket_confirm_resolution(*, ticket: RemovalTicket, reviewer, record_ids: list[int],
                              model: TargetModel | None = None) -> RemovalTicket:
    """The reviewer confirms which records of the resolution belong to the data subject.

    ``record_ids`` must be a subset of :func:`selectors.ticket_resolution` (provenance links plus
    content matches); it replaces any earlier confirmation. Allowed while the ticket is
    ``identity_verified`` or ``in_review``. The audit event ``ticket.resolution_confirmed`` lists
    every confirmed record id with its sha256.

    Raises:
        ServiceError: an id outside the resolution, or an empty list.
        TransitionError: the ticket is in another state.
    """
    model = _ticket_model(ticket, model)
    try:
        ids = sorted({int(r) for r in record_ids})
    except (TypeError, ValueError) as exc:
        raise ServiceError("record_ids must be a list of record ids") from exc
    if not ids:
        raise ServiceError("confirm at least one record (or deny the request)")
    linked, content = resolution_split(ticket=ticket, model=model)
    outside = sorted(set(ids) - linked - content)
    if outside:
        raise ServiceError(f"records {outside[:10]} are not in this ticket's resolution "
                           f"(GET .../resolution/ lists the candidates)")
    allowed_states = (TicketStatus.IDENTITY_VERIFIED, TicketStatus.IN_REVIEW)
    with transaction.atomic():
        locked = RemovalTicket.objects.select_for_update().get(pk=ticket.pk)
        if locked.status not in allowed_states:
            raise TransitionError(f"cannot confirm the resolution of a ticket that is '{locked.status}'",
                                  locked.status)
        before = {"confirmed_record_ids": locked.confirmed_record_ids}
        now = timezone.now()
        RemovalTicket.objects.filter(pk=locked.pk).update(
            confirmed_record_ids=ids, resolution_confirmed_by=reviewer, resolution_confirmed_at=now,
            updated_at=now)
        records = TrainingRecord.objects.filter(pk__in=ids)
        audit_event_record(actor=reviewer, verb="ticket.resolution_confirmed", obj=locked, before=before,
                           after={"records": forget_set_audit_entries(records), "count": len(ids),
                                  "content_matches": sorted(set(ids) & content)})
    locked.refresh_from_db()
    return locked


def approval_forget_records(*, ticket: RemovalTicket, model: TargetModel,
                            record_ids: list[int] | None) -> list[TrainingRecord]:
    """The forget set an approval may freeze, as TrainingRecords sorted by id.

    Allowed: the subject's provenance-linked records of ``model``'s corpus plus the content
    matches the reviewer confirmed (:func:`ticket_confirm_resolution`). ``record_ids=None`` takes
    all of them.

    Raises:
        ServiceError: empty set; records outside the model's training corpus or already forgotten;
            records outside the resolution (another person's, or unconfirmed content matches).
    """
    linked, content = resolution_split(ticket=ticket, model=model)
    confirmed = set(ticket.confirmed_record_ids or []) & content
    allowed = linked | confirmed
    if record_ids is None:
        record_ids = sorted(allowed)
    try:
        record_ids = sorted({int(r) for r in record_ids})
    except (TypeError, ValueError) as exc:
        raise ServiceError("record_ids must be a list of record ids") from exc
    if not record_ids:
        raise ServiceError("the forget set is empty: no training record of this subject was found")
    records = list(TrainingRecord.objects.filter(pk__in=record_ids, corpus=model.corpus,
                                                 split=TrainingRecord.SPLIT_TRAIN).order_by("pk"))
    if len(records) != len(record_ids):
        missing = sorted(set(record_ids) - {r.pk for r in records})
        raise ServiceError(f"records {missing[:10]} are not training records of model '{model.name}'")
    already = [r.pk for r in records if r.forgotten_by_id]
    if already:
        raise ServiceError(f"records {already[:10]} were already forgotten")
    outside = sorted(set(record_ids) - allowed)
    if outside:
        unconfirmed = sorted(set(outside) & content)
        hint = (f"; content matches {unconfirmed[:10]} must first be confirmed by a reviewer "
                f"(POST .../resolution/)" if unconfirmed else "")
        raise ServiceError(f"records {outside[:10]} are not in this ticket's resolution (provenance links of the "
                           f"data subject plus reviewer-confirmed content matches){hint}")
    return records


def hyperparameters_check(*, model: TargetModel, method: str, hyperparameters: dict | None) -> dict:
    """Validate the hyper-parameters a job of ``method`` on ``model`` would run with.

    The job runs with ``{**model.training_recipe["methods"][method], **hyperparameters}``
    (``requests_app.jobs``); that dict is resolved by the method (unknown keys, types, finiteness)
    and checked against :data:`unlearning_engine.hparams.BOUNDS` (e.g. epochs 1..1000,
    lr in (0, 1], batch_size 1..4096). Returns the resolved dict.

    Raises:
        ServiceError: not an object, or any invalid value (the API answers 400 with the message).
    """
    from unlearning_engine import get_method
    from unlearning_engine.errors import UnlearningInputError

    from .target_models import model_family_check

    if hyperparameters is not None and not isinstance(hyperparameters, dict):
        raise ServiceError("hyperparameters must be a JSON object")
    model_family_check(model, method)  # issue 19: a method of another family is refused first, by name
    recipe = (model.training_recipe or {}).get("methods", {}).get(method, {})
    try:
        return get_method(method, model.family).resolve_hyperparameters({**recipe, **(hyperparameters or {})})
    except UnlearningInputError as exc:
        raise ServiceError(f"invalid hyper-parameters for method '{method}': {exc}") from exc
