"""Classifier records and the offline default corpora (DESIGN §10–§11; issue 19 item 2).

A :class:`LabeledExample` is one training record: a feature row (the flattened pixels of an
image, or a tabular row), its class label, the service's record id and the data subject (the
privacy unit of subject-level DP-SGD, as :class:`unlearning_engine.data.Example`).

Default corpora, from scikit-learn's bundled files (no download):

- ``digits``: ``load_digits`` (1,797 8×8 grey-scale images, 10 classes, pixels 0…16). The data
  set has **no writer ids**, so data subjects are *assigned*, deterministically: the images are
  permuted with ``numpy.random.default_rng(seed)`` and image at permuted position p belongs to
  subject ⌊p/10⌋ (180 subjects of 10 images; the last has 7). Subjects with index ≡ 4 (mod 5) are
  the holdout split (never trained on): 36 subjects, 357 images; 144 subjects (1,440 images) train.
- ``breast_cancer``: ``load_breast_cancer`` (569 patients, 30 features, 2 classes); one data
  subject per row; rows at permuted position ≡ 4 (mod 5) are holdout (113), 456 train.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ...errors import UnlearningInputError


@dataclass(frozen=True)
class LabeledExample:
    """One classifier record: ``features`` (D floats), ``label`` (0…n_classes−1), ``record_id``
    (opaque; the TrainingRecord sha256 on the Django side), ``subject`` (privacy-unit key)."""

    features: tuple
    label: int
    record_id: str | None = None
    subject: str | None = None

    def content_digest(self) -> str:
        """sha256 of the canonical JSON ``{"features": [...], "label": l}`` (features as floats)."""
        return record_content_sha256([float(v) for v in self.features], int(self.label))


def record_content_sha256(features: Sequence[float], label: int) -> str:
    """sha256 hex of ``{"features": [...], "label": label}`` as canonical JSON (sorted keys, no spaces)."""
    payload = json.dumps({"features": [float(v) for v in features], "label": int(label)},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def to_tensors(examples: Sequence[LabeledExample]) -> tuple[torch.Tensor, torch.Tensor]:
    """(X float32 (N, D), y int64 (N,)). Raises UnlearningInputError on ragged rows."""
    if not examples:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    d = len(examples[0].features)
    if any(len(e.features) != d for e in examples):
        raise UnlearningInputError("classifier records have different feature counts")
    x = torch.tensor([list(e.features) for e in examples], dtype=torch.float32)
    return x, torch.tensor([int(e.label) for e in examples], dtype=torch.long)


def rows_of(examples: Sequence[LabeledExample]) -> list[tuple[torch.Tensor, int]]:
    """Per-record (features tensor (D,), label) items for the shared loop's batches."""
    x, y = to_tensors(examples)
    return [(x[i], int(y[i])) for i in range(len(examples))]


def collate_rows(items, _pad_id=None) -> dict[str, torch.Tensor]:
    """Batch of :func:`rows_of` items: ``{"x": (B, D) float32, "y": (B,) int64}`` (``collate_fn``
    of :func:`unlearning_engine.loop.run_loop` and :func:`unlearning_engine.dp_user.unit_step_gradient`)."""
    return {"x": torch.stack([it[0] for it in items]), "y": torch.tensor([it[1] for it in items], dtype=torch.long)}


def _rows(X, y, subjects, holdout_mask, prefix: str, names: list[str]) -> list[dict]:
    out = []
    for i in range(len(y)):
        out.append({"features": [float(v) for v in X[i]], "label": int(y[i]),
                    "split": "holdout" if holdout_mask[i] else "train",
                    "subject_id": f"{prefix}-{subjects[i]}", "subject_name": f"{names[0]} {subjects[i]}",
                    "source_index": i})
    return out


def digits_corpus(seed: int = 0, images_per_subject: int = 10) -> dict:
    """The digits corpus with assigned subjects (module docstring): ``{"rows": [...], "config": {...}}``;
    each row ``{features (64 floats), label, split, subject_id, subject_name, source_index}``."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    perm = np.random.default_rng(seed).permutation(len(d.target))
    position = np.empty_like(perm)
    position[perm] = np.arange(len(perm))
    subjects = position // images_per_subject
    rows = _rows(d.data, d.target, subjects, subjects % 5 == 4, "digits-writer", ["digits writer"])
    return {"rows": rows, "config": {"family": "image_classifier", "arch": "cnn", "input_shape": [1, 8, 8],
                                     "n_classes": 10, "embed_dim": 64, "input_transform": "scale",
                                     "input_scale": 16.0, "class_names": [str(c) for c in d.target_names]}}


def breast_cancer_corpus(seed: int = 0) -> dict:
    """The breast-cancer corpus, one subject per patient row (module docstring); same shape as
    :func:`digits_corpus`."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    perm = np.random.default_rng(seed).permutation(len(d.target))
    position = np.empty_like(perm)
    position[perm] = np.arange(len(perm))
    rows = _rows(d.data, d.target, np.arange(len(d.target)), position % 5 == 4, "patient", ["patient"])
    return {"rows": rows, "config": {"family": "tabular_classifier", "arch": "mlp", "input_shape": [30],
                                     "n_classes": 2, "embed_dim": 32, "hidden": 64, "input_transform": "log1p",
                                     "input_scale": 1.0, "class_names": [str(c) for c in d.target_names]}}


def examples_of_rows(rows: Sequence[dict], split: str = "train") -> list[LabeledExample]:
    """LabeledExamples of a corpus's rows of one split (record_id = content digest)."""
    out = []
    for r in rows:
        if r.get("split", "train") == split:
            ex = LabeledExample(tuple(r["features"]), int(r["label"]), subject=r.get("subject_id"))
            out.append(LabeledExample(ex.features, ex.label, ex.content_digest(), ex.subject))
    return out
