"""Machinery shared by the classifier-family methods (DESIGN §11; issue 19 item 3).

A :class:`ClassifierMethod` loads its starting artifact (θ_o from ``model_dir``, the seeded
initialisation from ``base_dir`` for ``retrain``, the DP base BM from ``dp_base_dir`` for
``dp2``), trains on the shared loop (:func:`unlearning_engine.families.classifier.train.train_classifier`,
checkpoints under ``output_dir/checkpoints``), and saves a classifier artifact. Records are
:class:`~unlearning_engine.families.classifier.data.LabeledExample`. Hyper-parameter defaults may
differ per family (``family_defaults``); the instance's ``defaults`` are the class defaults
updated with its family's.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

import torch

from ...errors import UnlearningInputError
from ...families import CLASSIFIER_FAMILIES, IMAGE_CLASSIFIER
from ...families.classifier.data import LabeledExample
from ...families.classifier.model import is_classifier_artifact, load_classifier, save_classifier
from ...families.classifier.train import train_classifier
from ..base import Method, UnlearningRequest, UnlearningResult
from ..common import resolve_device

CHECKPOINTS_DIR = "checkpoints"


def check_disjoint_labeled(forget, retain) -> None:
    """Raise UnlearningInputError when a forget record is also in the retain set, by record_id or
    by identical content (features and label)."""
    ids = {e.record_id for e in retain if e.record_id}
    digests = {e.content_digest() for e in retain}
    for e in forget:
        if e.record_id and e.record_id in ids:
            raise UnlearningInputError(f"forget and retain sets overlap: record_id {e.record_id!r} is in both")
        if e.content_digest() in digests:
            raise UnlearningInputError("forget and retain sets overlap: a retain record has the same features "
                                       "and label as a forget record")


class ClassifierRun:
    """State of one run: request, resolved hyper-parameters, device, per-phase loop stats."""

    def __init__(self, method: ClassifierMethod, req: UnlearningRequest, hp: dict):
        self.method, self.req, self.hp = method, req, hp
        self.device = resolve_device(req.device)
        self.out = Path(req.output_dir)
        self.stats: dict = {}
        self.details: dict[str, Any] = {}

    def loop(self, model, drive, *, phase: str, epochs: int, lr: float, batch_size: int, objective=None,
             other=None, pair: bool = False, params=None, weight_decay: float = 0.0, **hooks):
        """One phase on the shared loop (checkpoints in ``checkpoints/<phase>``, resumable)."""
        fp = {"method": self.method.name, "family": self.method.family, "phase": phase, "hp": self.hp,
              "seed": self.req.seed, "n_drive": len(drive), "n_other": len(other or [])}
        st = train_classifier(model, drive, epochs=epochs, lr=lr, batch_size=batch_size, seed=self.req.seed,
                              objective=objective, other=other, pair=pair, phase=phase,
                              progress=self.req.progress, checkpoint_dir=self.out / CHECKPOINTS_DIR / phase,
                              resume=self.req.resume, fingerprint=fp, params=params,
                              weight_decay=weight_decay, **hooks)
        self.stats[phase] = st
        return st


class ClassifierMethod(Method):
    """Base of the classifier methods (module docstring)."""

    families: ClassVar[frozenset[str]] = CLASSIFIER_FAMILIES
    family_defaults: ClassVar[dict[str, dict]] = {}
    nonneg_params = frozenset({"weight_decay"})
    start_from: ClassVar[str] = "model_dir"
    needs_model_dir = True

    def __init__(self, family: str = IMAGE_CLASSIFIER):
        if family not in self.families:
            raise UnlearningInputError(f"method {self.name!r} serves the families {sorted(self.families)}, "
                                       f"not {family!r}")
        self.family = family
        self.defaults = {**type(self).defaults, **self.family_defaults.get(family, {})}

    def validate(self, req: UnlearningRequest) -> dict:
        """Checks before any training; returns the resolved hyper-parameters.

        Raises:
            UnlearningInputError: empty forget set, empty retain set (when needed), records that
                are not LabeledExamples, forget/retain overlap, a missing or non-classifier
                starting artifact, unknown or invalid hyper-parameters, no output_dir.
        """
        if not req.forget:
            raise UnlearningInputError("the forget set is empty: nothing to unlearn")
        if self.needs_retain and not req.retain:
            raise UnlearningInputError(f"method {self.name!r} needs a non-empty retain set")
        if not all(isinstance(e, LabeledExample) for e in [*req.forget, *req.retain]):
            raise UnlearningInputError(f"method {self.name!r} ({self.family}) needs labelled feature records")
        check_disjoint_labeled(req.forget, req.retain)
        if not req.output_dir:
            raise UnlearningInputError("output_dir is required")
        start = getattr(req, self.start_from)
        if not start or not is_classifier_artifact(start):
            raise UnlearningInputError(f"method {self.name!r} needs {self.start_from} (a classifier artifact), "
                                       f"got {start!r}")
        return self.resolve_hyperparameters(req.hyperparameters)

    def train(self, ctx: ClassifierRun, model, forget: list, retain: list):  # pragma: no cover
        raise NotImplementedError

    def _run(self, req: UnlearningRequest, hp: dict) -> UnlearningResult:
        t0 = time.perf_counter()
        ctx = ClassifierRun(self, req, hp)
        torch.manual_seed(req.seed)
        model = load_classifier(getattr(req, self.start_from), device=ctx.device)
        model.train()
        model = self.train(ctx, model, list(req.forget), list(req.retain))
        model.eval()
        sha = save_classifier(model.cpu(), ctx.out)
        shutil.rmtree(ctx.out / CHECKPOINTS_DIR, ignore_errors=True)
        stats = list(ctx.stats.values())
        details = {"family": self.family, "start": self.start_from, "n_forget": len(req.forget),
                   "n_retain": len(req.retain), "device": str(ctx.device),
                   "phases": {k: {"steps": s.steps, "final_loss": s.final_loss, "epochs_run": s.epochs_run,
                                  "wall_seconds": round(s.wall_seconds, 3)} for k, s in ctx.stats.items()},
                   **ctx.details}
        return UnlearningResult(method=self.name, output_dir=str(req.output_dir), weights_sha256=sha,
                                hyperparameters=hp, steps=sum(s.steps for s in stats),
                                tokens=sum(s.tokens for s in stats), wall_seconds=time.perf_counter() - t0,
                                changes_weights=True, details=details)


class RetainFineTune(ClassifierMethod):
    """Methods whose whole training is minimising mean CE over D_r on the shared loop (retrain from
    the initialisation, ft from θ_o, dp2 from the DP base): they differ in the start and the budget."""

    def train(self, ctx: ClassifierRun, model, forget: list, retain: list):
        hp = ctx.hp
        ctx.loop(model, retain, phase=self.name, epochs=hp["epochs"], lr=hp["lr"], batch_size=hp["batch_size"],
                 weight_decay=hp["weight_decay"])
        return model
