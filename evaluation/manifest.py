"""Evaluation manifest: the one description of what an evaluation ran on (issue 23 item 1).

Every metric of a job's reports is tied to one manifest, and the certificate carries its digest:

- ``splits``: split name (``forget``, ``retain``, ``holdout``) → records, each ``(record_id,
  text_sha256)``; ``text_sha256`` is :func:`unlearning_engine.data.text_digest` (sha256 of the
  NFKC, case-folded, whitespace-collapsed training text), so the manifest never holds text;
- ``dataset_sha256``: the training corpus's content digest;
- ``model_weights_sha256``: the weights the job starts from (the version before);
- ``forget_set_sha256``: the forget-set digest frozen at approval (DESIGN §8 rule);
- ``evaluation_profile``: the pinned settings (``evaluation.report.EvaluationProfile``).

Its digest is sha256 of ``canonical_json(to_dict())`` (DESIGN §8 canonical JSON).

:func:`manifest_validate` refuses a manifest whose evaluation would measure nothing or the wrong
thing: an empty split (in one public benchmark a dropped retain split made utility look far
worse than it was), two splits sharing a record by id or by identical normalised text under
different ids (:func:`unlearning_engine.data.keyed_overlaps`, the project's one overlap rule), a
holdout record whose text is in the training corpus (it is not a non-member, so the membership
AUC is biased), and a forget split that is not the tickets' frozen resolution.

No Django, no torch.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from unlearning_engine.data import Example, keyed_overlaps, text_digest

from .certificate import canonical_json

__all__ = ["SCHEMA", "SPLITS", "SplitRecord", "EvaluationManifest", "ManifestError", "manifest_build",
           "manifest_validate", "split_records"]

SCHEMA = "evaluation-manifest/1"
#: The splits every evaluation needs, in the order problems are reported.
SPLITS = ("forget", "retain", "holdout")
#: The pairs of splits that must be disjoint.
DISJOINT_PAIRS = (("forget", "retain"), ("forget", "holdout"), ("retain", "holdout"))
DIGEST_RULE = ("sha256 of the canonical JSON (sorted keys, no whitespace) of the manifest; text_sha256 = sha256 "
               "of the record's training text after NFKC, case folding and whitespace collapsing")


class ManifestError(ValueError):
    """The manifest is refused; ``problems`` lists every reason (one line each)."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("evaluation manifest refused: " + "; ".join(self.problems))


@dataclass(frozen=True, order=True)
class SplitRecord:
    """One record of a split: its id (the service's record id) and its normalised-text sha256."""

    record_id: str
    text_sha256: str


def split_records(examples: Iterable[Example], record_ids: Iterable[str] | None = None) -> tuple[SplitRecord, ...]:
    """:class:`SplitRecord` of each example (its ``record_id``, or the matching item of
    ``record_ids``), sorted by id.

    Raises:
        ValueError: an example has no id, or ``record_ids`` has another length.
    """
    examples = list(examples)
    ids = [e.record_id for e in examples] if record_ids is None else [str(i) for i in record_ids]
    if len(ids) != len(examples):
        raise ValueError(f"{len(ids)} record ids for {len(examples)} examples")
    if any(i is None or i == "" for i in ids):
        raise ValueError("every record of a manifest needs a record id")
    return tuple(sorted(SplitRecord(str(i), text_digest(e)) for i, e in zip(ids, examples, strict=True)))


@dataclass(frozen=True)
class EvaluationManifest:
    """See the module docstring. ``splits`` maps a split name to its records sorted by id."""

    splits: Mapping[str, tuple[SplitRecord, ...]]
    dataset_sha256: str
    model_weights_sha256: str
    evaluation_profile: dict = field(default_factory=dict)
    forget_set_sha256: str | None = None

    def split_summary(self, name: str) -> dict:
        """``{"count", "sha256"}`` of one split: sha256 of the canonical JSON of its record list."""
        records = self.splits.get(name, ())
        return {"count": len(records),
                "sha256": hashlib.sha256(canonical_json(_records_json(records))).hexdigest()}

    def to_dict(self) -> dict:
        """JSON form (what the digest covers): schema, splits with every record, digests, profile."""
        return {
            "schema": SCHEMA,
            "splits": {name: _records_json(recs) for name, recs in sorted(self.splits.items())},
            "dataset_sha256": self.dataset_sha256,
            "model_weights_sha256": self.model_weights_sha256,
            "forget_set_sha256": self.forget_set_sha256,
            "evaluation_profile": self.evaluation_profile,
        }

    @property
    def sha256(self) -> str:
        """sha256 (hex) of ``canonical_json(self.to_dict())``."""
        return hashlib.sha256(canonical_json(self.to_dict())).hexdigest()

    def summary(self) -> dict:
        """What a report and a certificate carry: the digest, per-split counts and digests, the
        dataset, weights and forget-set digests (record ids and text digests stay in the manifest), and
        which half of the holdout it used when the profile records one (``holdout_split``, issue 15)."""
        return {
            "schema": SCHEMA,
            "sha256": self.sha256,
            "splits": {name: self.split_summary(name) for name in sorted(self.splits)},
            "dataset_sha256": self.dataset_sha256,
            "model_weights_sha256": self.model_weights_sha256,
            "forget_set_sha256": self.forget_set_sha256,
            "digest_rule": DIGEST_RULE,
        } | ({"holdout_split": self.evaluation_profile["holdout_split"]}
             if "holdout_split" in self.evaluation_profile else {})

    def text_digests(self, name: str) -> list[str]:
        """Sorted text digests of one split (to check that a report ran on these records)."""
        return sorted(r.text_sha256 for r in self.splits.get(name, ()))

    @classmethod
    def from_dict(cls, d: Mapping) -> EvaluationManifest:
        """Inverse of :meth:`to_dict`. Raises ``ValueError`` on another schema or a bad shape."""
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not an {SCHEMA} document (schema {d.get('schema')!r})")
        try:
            splits = {name: tuple(sorted(SplitRecord(str(r["id"]), str(r["text_sha256"])) for r in recs))
                      for name, recs in d["splits"].items()}
            return cls(splits=splits, dataset_sha256=d["dataset_sha256"],
                       model_weights_sha256=d["model_weights_sha256"],
                       evaluation_profile=dict(d.get("evaluation_profile") or {}),
                       forget_set_sha256=d.get("forget_set_sha256"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed evaluation manifest: {exc}") from exc


def _records_json(records: Iterable[SplitRecord]) -> list[dict]:
    return [{"id": r.record_id, "text_sha256": r.text_sha256} for r in records]


def manifest_build(*, splits: Mapping[str, Iterable[SplitRecord]], dataset_sha256: str,
                   model_weights_sha256: str, evaluation_profile: Mapping | None = None,
                   forget_set_sha256: str | None = None) -> EvaluationManifest:
    """An :class:`EvaluationManifest` (records sorted by id). Not validated: see :func:`manifest_validate`."""
    return EvaluationManifest(
        splits={name: tuple(sorted(recs)) for name, recs in splits.items()}, dataset_sha256=dataset_sha256,
        model_weights_sha256=model_weights_sha256, evaluation_profile=dict(evaluation_profile or {}),
        forget_set_sha256=forget_set_sha256)


def _ids(records: Sequence[SplitRecord], overlaps, kind: str) -> list[str]:
    return [records[o.index].record_id for o in overlaps if o.kind == kind]


def _overlap_problem(a: str, b: str, recs_a: Sequence[SplitRecord], recs_b: Sequence[SplitRecord]) -> str | None:
    overlaps = keyed_overlaps([(r.record_id, r.text_sha256) for r in recs_a],
                              [(r.record_id, r.text_sha256) for r in recs_b])
    if not overlaps:
        return None
    by_id, by_text = _ids(recs_b, overlaps, "record_id"), _ids(recs_b, overlaps, "text")
    parts = []
    if by_id:
        parts.append(f"{len(by_id)} record(s) by record id ({', '.join(by_id[:10])})")
    if by_text:
        parts.append(f"{len(by_text)} {b} record(s) with the same text as a {a} record under another id "
                     f"({', '.join(by_text[:10])})")
    return f"the {a} and {b} splits overlap: " + " and ".join(parts) + "; they must be disjoint"


def manifest_validate(manifest: EvaluationManifest, *, training_text_digests: Iterable[str] | None = None,
                      retain_population: Iterable[SplitRecord] | None = None,
                      frozen_forget_ids: Iterable[str] | None = None,
                      frozen_forget_sha256: str | None = None) -> None:
    """Refuse a manifest an evaluation must not run on; returns None when it is sound.

    Args:
        manifest: the manifest to check.
        training_text_digests: text digests of every training record of the corpus (forgotten
            ones included: the original model saw them); a holdout record with one of them is
            "drawn from the training corpus". ``None`` skips that check.
        retain_population: every record the model is trained on as retain set (D_r), when the
            retain split is a sample of it; the forget split must be disjoint from all of it.
        frozen_forget_ids: record ids frozen at approval (the union of the tickets' resolved
            record sets); the forget split must be exactly these. ``None`` skips the check.
        frozen_forget_sha256: the forget-set digest frozen at approval; must equal the manifest's.

    Raises:
        ManifestError: with every problem found (empty split, overlap by id or by normalised text,
            holdout from the training corpus, forget split other than the frozen resolution).
    """
    problems = []
    for name in SPLITS:
        if not manifest.splits.get(name):
            problems.append(f"the {name} split is empty")
    for a, b in DISJOINT_PAIRS:
        problem = _overlap_problem(a, b, manifest.splits.get(a, ()), manifest.splits.get(b, ()))
        if problem:
            problems.append(problem)
    if retain_population is not None and not any(p.startswith("the forget and retain ") for p in problems):
        problem = _overlap_problem("forget", "retain (training)", manifest.splits.get("forget", ()),
                                   list(retain_population))
        if problem:
            problems.append(problem)
    if training_text_digests is not None:
        training = set(training_text_digests)
        leaked = [r.record_id for r in manifest.splits.get("holdout", ()) if r.text_sha256 in training]
        if leaked:
            problems.append(f"the holdout split is drawn from the training corpus: {len(leaked)} holdout record(s) "
                            f"have the text of a training record ({', '.join(leaked[:10])}); holdout records must "
                            f"never have been trained on")
    if frozen_forget_ids is not None:
        frozen = {str(i) for i in frozen_forget_ids}
        actual = {r.record_id for r in manifest.splits.get("forget", ())}
        if frozen != actual:
            missing, extra = sorted(frozen - actual), sorted(actual - frozen)
            problems.append(
                "the forget split does not match the frozen resolution of the tickets"
                + (f": frozen records missing from it ({', '.join(missing[:10])})" if missing else "")
                + (f"; records not in the frozen resolution ({', '.join(extra[:10])})" if extra else ""))
    if frozen_forget_sha256 is not None and manifest.forget_set_sha256 != frozen_forget_sha256:
        problems.append(f"the forget-set digest {str(manifest.forget_set_sha256)[:16]}... differs from the one "
                        f"frozen at approval ({frozen_forget_sha256[:16]}...): the records changed since approval")
    if problems:
        raise ManifestError(problems)
