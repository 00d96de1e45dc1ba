"""Evaluation manifests of jobs (issue 23 item 1): built and validated before any training.

:func:`evaluation_manifest_prepare` collects a job's splits from the database (forget = the frozen
records, retain = the deterministic evaluation sample of D_r, holdout = the corpus's holdout
records), builds the :class:`evaluation.manifest.EvaluationManifest` and validates it
(:func:`evaluation.manifest.manifest_validate`). Approval, retry and comparison call it before a job
exists (a refusal is a 400); the worker calls it again before training (a refusal is a FAILED job
with the reason), because the corpus may have changed in between.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .. import selectors
from ..models import TargetModel, TrainingRecord
from .common import ServiceError, forget_set_digest

__all__ = ["ManifestSplits", "evaluation_manifest_prepare", "holdout_half_records", "evaluation_profile_pinned", "job_manifest_prepare",
           "record_to_example", "retain_sample", "ticket_manifest_check"]


def record_to_example(record):
    """A TrainingRecord as the engine's :class:`unlearning_engine.Example` (record_id = the record's
    sha256, subject = the DataSubject's public id, the privacy unit of subject-level DP-SGD; None
    without a subject). A classifier record (``features`` set, issue 19) becomes a
    :class:`unlearning_engine.families.classifier.data.LabeledExample`."""
    from unlearning_engine import Example

    subject = str(record.subject.public_id) if record.subject_id is not None else None
    if record.features is not None:
        from unlearning_engine.families.classifier.data import LabeledExample

        return LabeledExample(tuple(record.features), int(record.label), record_id=record.sha256, subject=subject)
    if record.question:
        return Example(question=record.question, answer=record.answer, record_id=record.sha256, subject=subject)
    return Example(text=record.text, record_id=record.sha256, subject=subject)


def retain_sample(records, n: int) -> list:
    """Deterministic evaluation sample of the retain set: the first ``n`` records by sha256."""
    return sorted(records, key=lambda r: r.sha256)[:n]


def evaluation_profile_pinned(family: str = "causal_lm") -> dict:
    """The evaluation profile a job's reports use (``EvaluationProfile.from_settings``; the
    ``classifier`` profile for the classifier families, DESIGN §11), as a dict."""
    from evaluation.report import EvaluationProfile

    if family != "causal_lm":
        from evaluation.profiles.classifier import classifier_profile

        return classifier_profile(settings.EVALUATION_BOOTSTRAP_RESAMPLES_CLASSIFIER, 0, family)

    return EvaluationProfile.from_settings(max_new_tokens_verbmem=settings.EVALUATION_MAX_NEW_TOKENS).to_dict()


HOLDOUT_HALVES = ("certification", "calibration")


def holdout_half_records(holdout: list, half: str) -> tuple[list, dict]:
    """The ``half`` (``certification`` or ``calibration``) of a corpus's holdout records and the
    description written into the manifest's evaluation profile (issue 15: a real request is
    certified on one half; calibrations tune on the other, :func:`evaluation.calibration.holdout_halves`)."""
    from evaluation.calibration import HOLDOUT_SPLIT_RULE, holdout_halves

    if half not in HOLDOUT_HALVES:
        raise ServiceError(f"holdout half must be one of {HOLDOUT_HALVES}")
    calibration, certification = holdout_halves(holdout, key=lambda r: r.sha256)
    chosen = certification if half == "certification" else calibration
    return chosen, {"rule": HOLDOUT_SPLIT_RULE, "half": half, "holdout_records": len(holdout),
                    "certification_records": len(certification), "calibration_records": len(calibration)}


@dataclass
class ManifestSplits:
    """A validated manifest with the records of its splits (``retain`` = all of D_r, trained on;
    ``retain_evaluated`` = the manifest's retain split)."""

    manifest: object
    forget: list
    retain: list
    retain_evaluated: list
    holdout: list


def _training_digests(model: TargetModel, holdout: list) -> set[str]:
    """Normalised-text digests of every training record of the corpus (forgotten ones included:
    the original model saw them). A record whose text was purged keeps only its content sha256, so
    a holdout record with that sha256 counts as drawn from the training corpus too."""
    from unlearning_engine.data import text_digest

    digests, purged = set(), set()
    rows = TrainingRecord.objects.filter(corpus=model.corpus, split=TrainingRecord.SPLIT_TRAIN).select_related("subject")
    for record in rows.iterator(chunk_size=2000):
        if record.has_content:
            digests.add(text_digest(record_to_example(record)))
        else:
            purged.add(record.sha256)
    digests.update(text_digest(record_to_example(r)) for r in holdout if r.sha256 in purged)
    return digests


def evaluation_manifest_prepare(*, model: TargetModel, forget_records: list, weights_sha256: str,
                                frozen_forget_ids, frozen_forget_sha256: str | None,
                                holdout_half: str = "certification") -> ManifestSplits:
    """Build and validate the evaluation manifest of a job on ``model`` before it trains.

    The holdout split is one half of the corpus's holdout (:func:`holdout_half_records`): the
    ``certification`` half for a real request, the ``calibration`` half for a calibration; the
    half is recorded in the manifest's ``evaluation_profile["holdout_split"]``. The whole holdout
    is checked against the training corpus first (a contaminated record in either half is refused).

    Args:
        forget_records: the TrainingRecords of the forget set as the job will read them.
        weights_sha256: the weights the job starts from (its source version).
        frozen_forget_ids: the union of the tickets' frozen ``resolved_record_ids``.
        frozen_forget_sha256: the forget-set digest frozen at approval (``None`` while approving).

    Raises:
        ServiceError: the manifest is refused (empty forget/retain/holdout split, splits that share
            a record by id or by normalised text, holdout records with the text of a training
            record, a forget set other than the frozen resolution); the message lists every reason.
    """
    from evaluation.manifest import ManifestError, manifest_build, manifest_validate, split_records

    forget_ids = {r.pk for r in forget_records}
    retain = list(TrainingRecord.objects.filter(corpus=model.corpus, split=TrainingRecord.SPLIT_TRAIN,
                                                forgotten_by__isnull=True)
                  .exclude(pk__in=forget_ids).select_related("subject"))
    sample = retain_sample(retain, settings.EVALUATION_RETAIN_SAMPLE if model.family == "causal_lm"
                           else settings.EVALUATION_RETAIN_SAMPLE_CLASSIFIER)
    holdout = list(selectors.corpus_holdout_records(model.corpus).select_related("subject"))
    purged = [r.pk for r in forget_records if not r.has_content]
    if purged:
        raise ServiceError(f"forget-set text was purged (records {purged[:10]}); the job cannot be re-run")

    def entries(records):
        return split_records([record_to_example(r) for r in records], [r.pk for r in records])

    half, split_info = holdout_half_records(holdout, holdout_half)
    digests = _training_digests(model, holdout)
    retain_entries = entries(retain)
    manifest = None
    for split_holdout, profile in ((holdout, evaluation_profile_pinned(model.family)),
                                   (half, {**evaluation_profile_pinned(model.family), "holdout_split": split_info})):
        manifest = manifest_build(
            splits={"forget": entries(forget_records), "retain": entries(sample), "holdout": entries(split_holdout)},
            dataset_sha256=model.corpus.content_sha256, model_weights_sha256=weights_sha256,
            evaluation_profile=profile, forget_set_sha256=forget_set_digest([r.sha256 for r in forget_records]))
        try:  # first the whole holdout (contamination anywhere), then the half the job evaluates on
            manifest_validate(manifest, training_text_digests=digests, retain_population=retain_entries,
                              frozen_forget_ids=[str(i) for i in frozen_forget_ids],
                              frozen_forget_sha256=frozen_forget_sha256)
        except ManifestError as exc:
            raise ServiceError(str(exc)) from exc
    return ManifestSplits(manifest=manifest, forget=list(forget_records), retain=retain,
                          retain_evaluated=sample, holdout=half)


def ticket_manifest_check(*, ticket, weights_sha256: str) -> ManifestSplits:
    """:func:`evaluation_manifest_prepare` for a new job on an approved ticket's frozen forget set
    (retry, comparison). Raises ServiceError (the API answers 400)."""
    records = list(TrainingRecord.objects.filter(pk__in=ticket.resolved_record_ids).select_related("subject")
                   .order_by("pk"))
    return evaluation_manifest_prepare(model=ticket.target_model, forget_records=records,
                                       weights_sha256=weights_sha256, frozen_forget_ids=ticket.resolved_record_ids,
                                       frozen_forget_sha256=ticket.forget_set_sha256)


def job_manifest_prepare(job) -> ManifestSplits:
    """:func:`evaluation_manifest_prepare` for a claimed job, before it trains: the forget set as
    the worker reads it against the union of its tickets' frozen resolutions and the job's frozen
    forget-set digest. Raises ServiceError (the job ends FAILED with the reason)."""
    frozen = sorted({i for t in job.tickets.all() for i in t.resolved_record_ids})
    if not frozen:
        raise ServiceError("the forget set is empty")
    forget = list(selectors.job_forget_records(job).select_related("subject"))
    return evaluation_manifest_prepare(model=job.model, forget_records=forget,
                                       weights_sha256=job.source_version.weights_sha256,
                                       frozen_forget_ids=frozen, frozen_forget_sha256=job.forget_set_sha256)
