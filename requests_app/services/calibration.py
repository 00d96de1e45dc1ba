"""Calibration of a method's hyper-parameters per model (issue 15 item 1): request, store, use.

- :func:`model_calibrate`: every check that needs no training (method, search space within
  BOUNDS, the calibration request's subjects, the exact-retrain reference, the evaluation
  manifest on the calibration half of the holdout), then a ``calibration`` preparation job on the
  ``gpu`` queue (in-process in embedded mode), like ``dp_base`` and ``reference``
  (``services/preparation.py``). The worker side is :mod:`requests_app.calibration`.
- :func:`method_calibration_store`: the chosen hyper-parameters become the (model, method)
  defaults, audited in the transaction that finishes the job.
- :func:`approval_hyperparameters`: what an approval without hyper-parameters runs with, and where
  the values came from (written into the approval's audit events).

A calibration request forgets data subjects nobody asked to erase: subjects with training records
in the model's corpus, none of them forgotten, and no ticket that is not denied or withdrawn.
"""
from __future__ import annotations

from django.db import transaction

from .. import selectors
from ..audit import audit_event_record
from ..models import (
    DataSubject,
    JobStatus,
    MethodCalibration,
    PreparationJob,
    RemovalTicket,
    TargetModel,
    TicketStatus,
    TrainingRecord,
)
from .common import ServiceError, forget_set_digest

__all__ = ["CALIBRATION_MIN_RETAIN_SUBJECTS", "approval_hyperparameters", "calibration_candidates",
           "method_calibration_store", "model_calibrate"]

#: Subjects that must stay in the retain set of a calibration request besides the calibration subjects.
CALIBRATION_MIN_RETAIN_SUBJECTS = 2
MAX_TRIALS_LIMIT = 100
MAX_SECONDS_LIMIT = 7 * 24 * 3600
_DEAD_TICKET = (TicketStatus.DENIED, TicketStatus.WITHDRAWN)


def calibration_candidates(model: TargetModel) -> dict[str, str]:
    """{public id: digest of its training records} of the subjects a calibration request may use
    (see the module docstring); the digest makes the automatic pick depend on the data only."""
    records = TrainingRecord.objects.filter(corpus=model.corpus, split=TrainingRecord.SPLIT_TRAIN).exclude(subject=None)
    erased = set(records.filter(forgotten_by__isnull=False).values_list("subject_id", flat=True).distinct())
    asked = set(RemovalTicket.objects.exclude(status__in=_DEAD_TICKET).values_list("subject_id", flat=True))
    shas: dict[int, list[str]] = {}
    for subject_id, sha in records.order_by("pk").values_list("subject_id", "sha256"):
        if subject_id not in erased and subject_id not in asked:
            shas.setdefault(subject_id, []).append(sha)
    ids = dict(DataSubject.objects.filter(pk__in=shas).values_list("pk", "public_id"))
    return {str(ids[pk]): forget_set_digest(v) for pk, v in shas.items()}


def _subjects_choose(model: TargetModel, subject_ids: list | None, k: int) -> list[str]:
    from evaluation.calibration import subjects_pick

    candidates = calibration_candidates(model)
    if subject_ids:
        ids = sorted({str(s) for s in subject_ids})
        outside = [s for s in ids if s not in candidates]
        if outside:
            raise ServiceError(f"subjects {outside[:5]} cannot be calibration subjects: they are unknown, have no "
                               f"training record in corpus '{model.corpus.name}', or are being (or were) erased")
    else:
        if not 1 <= k <= 50:
            raise ServiceError("subjects must be between 1 and 50")
        ids = None
    n = len(ids) if ids else k
    if len(candidates) < n + CALIBRATION_MIN_RETAIN_SUBJECTS:
        raise ServiceError(
            f"too few data subjects that are not being erased for a calibration request: {len(candidates)} "
            f"available, {n} to forget plus at least {CALIBRATION_MIN_RETAIN_SUBJECTS} to keep in the retain set")
    return ids or subjects_pick(candidates, k)


def _plan(model: TargetModel, method: str, search_space: dict | None, strategy: str, max_trials: int,
          seed: int) -> tuple[dict, list[dict]]:
    from evaluation.calibration import (
        CalibrationError,
        calibration_method_check,
        default_search_space,
        search_space_check,
        trials_plan,
    )

    from .approval import hyperparameters_check

    try:
        calibration_method_check(method)
        base = hyperparameters_check(model=model, method=method, hyperparameters=None)
        space = (search_space_check(method, search_space) if search_space is not None
                 else default_search_space(method, base))
        plan = trials_plan(space, strategy=strategy, max_trials=max_trials, seed=seed, base=base)
    except CalibrationError as exc:
        raise ServiceError(str(exc)) from exc
    for hp in plan:  # every trial as a job would run it: recipe ← trial, resolved by the method
        hyperparameters_check(model=model, method=method, hyperparameters=hp)
    return space, plan


def _reference_check(model: TargetModel, digest: str) -> int | None:
    """The reference version id for the calibration forget set, or None when the job trains it.
    Raises ServiceError when there is none and the model cannot train one."""
    ref = selectors.model_reference_version(model, digest)
    if ref is not None:
        return ref.pk
    if model.reference_policy == "none" or not model.base_artifact_uri:
        why = ("its reference_policy is 'none'" if model.reference_policy == "none"
               else "it has no registered pre-trained base to retrain from")
        raise ServiceError(
            f"model '{model.name}' has no exact-retrain reference for this calibration request and cannot train one "
            f"({why}): a calibration is judged against the retrained model; register a reference for these "
            "records (POST .../prepare/ kind=reference purpose=calibration) or a pre-trained base")
    return None


def model_calibrate(*, actor, model: TargetModel, method: str, search_space: dict | None = None,
                    subject_ids: list | None = None, subjects: int = 1, strategy: str = "grid",
                    max_trials: int = 12, max_seconds: float = 3600.0, seed: int = 0) -> PreparationJob:
    """Queue a calibration of ``method`` on ``model`` (a ``calibration`` preparation job).

    Raises:
        ServiceError (400): unknown method, ``eco`` (no weight change), ``retrain``/``dp2`` (nothing to
            calibrate), a search space outside BOUNDS or with unknown knobs, caps out of range, too
            few non-erased subjects, subjects that are being erased, no reference and no way to train
            one, an evaluation manifest refused (e.g. empty calibration holdout half), a calibration of
            the same method already queued or running.
    """
    from .manifests import evaluation_manifest_prepare
    from .preparation import preparation_create

    if not isinstance(max_trials, int) or not 1 <= max_trials <= MAX_TRIALS_LIMIT:
        raise ServiceError(f"max_trials must be an integer between 1 and {MAX_TRIALS_LIMIT}")
    if not 1 <= float(max_seconds) <= MAX_SECONDS_LIMIT:
        raise ServiceError(f"max_seconds must be between 1 and {MAX_SECONDS_LIMIT}")
    space, plan = _plan(model, method, search_space, strategy, max_trials, seed)
    ids = _subjects_choose(model, subject_ids, subjects)
    records = list(TrainingRecord.objects.filter(corpus=model.corpus, split=TrainingRecord.SPLIT_TRAIN,
                                                 subject__public_id__in=ids).select_related("subject").order_by("pk"))
    digest = forget_set_digest([r.sha256 for r in records])
    source = selectors.model_serving_version(model)
    if source is None:
        raise ServiceError(f"model '{model.name}' has no serving version")
    evaluation_manifest_prepare(model=model, forget_records=records, weights_sha256=source.weights_sha256,
                                frozen_forget_ids=[r.pk for r in records], frozen_forget_sha256=digest,
                                holdout_half="calibration")
    reference = _reference_check(model, digest)
    if PreparationJob.objects.filter(model=model, kind=PreparationJob.KIND_CALIBRATION, params__method=method,
                                     status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).exists():
        raise ServiceError(f"a calibration of '{method}' on model '{model.name}' is already queued or running")
    params = {"method": method, "search_space": space, "plan": plan, "strategy": strategy, "seed": seed,
              "max_trials": max_trials, "max_seconds": float(max_seconds), "subject_ids": ids,
              "record_ids": [r.pk for r in records], "forget_set_sha256": digest, "reference_version": reference}
    return preparation_create(actor=actor, kind=PreparationJob.KIND_CALIBRATION, model=model, params=params)


def method_calibration_store(*, model: TargetModel, method: str, hyperparameters: dict, job: PreparationJob,
                             summary: dict) -> MethodCalibration:
    """Store (or replace) the calibrated defaults of (model, method); audited
    ``model.method_calibrated`` with the values before and after. Call inside the job's finishing
    transaction (:func:`services.preparation_succeed`)."""
    with transaction.atomic():
        current = MethodCalibration.objects.select_for_update().filter(model=model, method=method).first()
        before = ({"hyperparameters": current.hyperparameters, "calibration": str(current.calibration.public_id)}
                  if current else None)
        if current is None:
            current = MethodCalibration.objects.create(model=model, method=method, hyperparameters=hyperparameters,
                                                       calibration=job, summary=summary)
        else:
            MethodCalibration.objects.filter(pk=current.pk).update(hyperparameters=hyperparameters, calibration=job,
                                                                   summary=summary)
            current.refresh_from_db()
        audit_event_record(actor="system", verb="model.method_calibrated", obj=model, before=before,
                           after={"method": method, "hyperparameters": hyperparameters,
                                  "calibration": str(job.public_id), "summary": summary})
    return current


def approval_hyperparameters(*, model: TargetModel, method: str, hyperparameters: dict | None) -> tuple[dict, dict]:
    """(hyper-parameters the job stores, where they came from) for an approval of ``method``.

    Explicit values win (``source: request``); else the (model, method) calibration
    (``source: calibration`` with the calibration job id); else none (``source: model recipe``:
    the job runs the model's recipe over the method's preset defaults). ``{}`` counts as none.
    """
    if hyperparameters:
        return dict(hyperparameters), {"source": "request"}
    cal = MethodCalibration.objects.filter(model=model, method=method).select_related("calibration").first()
    if cal is None:
        return {}, {"source": "model recipe", "detail": "the model's training recipe over the method's defaults"}
    return dict(cal.hyperparameters), {"source": "calibration", "calibration": str(cal.calibration.public_id),
                                       "calibrated_at": cal.updated_at.isoformat()}
