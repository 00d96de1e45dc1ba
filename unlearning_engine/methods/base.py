"""Method protocol, request/result types and validation shared by all unlearning methods."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..data import Example, format_example, split_overlaps
from ..errors import UnlearningInputError
from ..hparams import resolve
from ..presets import preset_hyperparameters
from ..training import Progress


@dataclass
class UnlearningRequest:
    """One unlearning job as the engine sees it.

    ``model_dir``: serving model artifact θ_o; ``output_dir``: where the new artifact is written;
    ``forget`` = D_f, ``retain`` = D_r (corpus minus every forgotten record);
    ``base_dir``: pre-trained base (``retrain``); ``dp_base_dir``: DP base BM (``dp2``);
    ``hyperparameters``: overrides of the method's defaults (unknown keys are rejected; the key
    ``"preset"`` selects a size preset, see :mod:`unlearning_engine.presets`);
    ``resume``: continue from the last per-epoch checkpoint in ``output_dir/checkpoints``;
    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (default: CUDA when available, else CPU);
    ``family``: the target model's family (DESIGN §11), which selects the method's implementation
    (records are :class:`~unlearning_engine.data.Example` for ``causal_lm``,
    :class:`~unlearning_engine.families.classifier.data.LabeledExample` for the classifiers).
    """

    method: str
    model_dir: str
    output_dir: str
    forget: list[Example]
    retain: list[Example]
    base_dir: str | None = None
    dp_base_dir: str | None = None
    hyperparameters: dict = field(default_factory=dict)
    seed: int = 0
    progress: Callable[[Progress], None] | None = None
    resume: bool = False
    device: str | None = None
    family: str = "causal_lm"


@dataclass
class UnlearningResult:
    """Outcome of a method run: artifact location and sha256, resolved hyper-parameters,
    optimizer ``steps``, supervised ``tokens`` processed, ``wall_seconds``, whether weights
    changed, and method-specific ``details`` (JSON-serialisable)."""

    method: str
    output_dir: str
    weights_sha256: str
    hyperparameters: dict
    steps: int
    tokens: int
    wall_seconds: float
    changes_weights: bool
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        from dataclasses import asdict
        return asdict(self)


class Method:
    """Base class of an unlearning method.

    Subclasses set ``name``, ``defaults`` (hyper-parameter name -> default value),
    ``changes_weights``, and implement :meth:`_run`. Positive-integer hyper-parameters are listed
    in ``int_params``; every other numeric one must be > 0 unless listed in ``nonneg_params``;
    non-numeric ones (or numbers with other bounds) have an entry in ``validators``
    (see :mod:`unlearning_engine.hparams`).
    """

    name: ClassVar[str] = ""
    #: the model families this implementation serves (DESIGN §11)
    families: ClassVar[frozenset[str]] = frozenset({"causal_lm"})
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    int_params: ClassVar[frozenset[str]] = frozenset({"epochs", "batch_size"})
    nonneg_params: ClassVar[frozenset[str]] = frozenset()
    validators: ClassVar[dict[str, Callable[[str, Any], Any]]] = {}
    changes_weights: ClassVar[bool] = True
    needs_base_dir: ClassVar[bool] = False
    needs_dp_base_dir: ClassVar[bool] = False
    needs_model_dir: ClassVar[bool] = False
    needs_retain: ClassVar[bool] = True

    def resolve_hyperparameters(self, overrides: dict | None) -> dict:
        """``defaults`` ← preset values (``overrides["preset"]`` or the default preset) ←
        ``overrides``; raises UnlearningInputError on unknown keys or invalid values."""
        overrides = dict(overrides or {})
        layered = dict(overrides)
        if "preset" in self.defaults:
            preset = self.validators["preset"]("preset", overrides.get("preset", self.defaults["preset"]))
            layered = {**preset_hyperparameters(self.name, preset), **overrides}
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise UnlearningInputError(
                f"unknown hyper-parameter(s) for method {self.name!r}: {unknown}; "
                f"allowed: {sorted(self.defaults)}")
        return resolve(self.name, self.defaults, layered, self.validators, self.int_params,
                       self.nonneg_params)

    def validate(self, req: UnlearningRequest) -> dict:
        """All checks that must pass before any training; returns resolved hyper-parameters.

        Raises:
            UnlearningInputError: empty forget set; empty retain set (if needed); forget/retain
                overlap by record_id or by formatted text; missing model_dir/base_dir/dp_base_dir;
                unknown or invalid hyper-parameters; missing output_dir.
        """
        if not req.forget:
            raise UnlearningInputError("the forget set is empty: nothing to unlearn")
        if self.needs_retain and not req.retain:
            raise UnlearningInputError(f"method {self.name!r} needs a non-empty retain set")
        check_disjoint(req.forget, req.retain)
        if not req.output_dir:
            raise UnlearningInputError("output_dir is required")
        for needed, attr in ((self.needs_model_dir, "model_dir"), (self.needs_base_dir, "base_dir"),
                             (self.needs_dp_base_dir, "dp_base_dir")):
            if not needed:
                continue
            val = getattr(req, attr)
            if not val:
                raise UnlearningInputError(f"method {self.name!r} needs {attr} (not given)")
            if not (Path(val) / "model.safetensors").is_file():
                raise UnlearningInputError(
                    f"method {self.name!r}: {attr}={val!r} is not a model artifact directory")
        return self.resolve_hyperparameters(req.hyperparameters)

    def run(self, req: UnlearningRequest) -> UnlearningResult:
        """Validate, then train and write the artifact to ``req.output_dir``."""
        hp = self.validate(req)
        return self._run(req, hp)

    def _run(self, req: UnlearningRequest, hp: dict) -> UnlearningResult:  # pragma: no cover
        raise NotImplementedError


def check_disjoint(forget: list[Example], retain: list[Example]) -> None:
    """Raise UnlearningInputError if a forget record also appears in the retain set, by
    ``record_id`` (when both have one) or by identical normalised text
    (:func:`unlearning_engine.data.split_overlaps`)."""
    overlaps = split_overlaps(forget, retain)
    if not overlaps:
        return
    first = overlaps[0]
    if first.kind == "record_id":
        raise UnlearningInputError(
            f"forget and retain sets overlap: record_id {first.key!r} is in both")
    raise UnlearningInputError(
        "forget and retain sets overlap: a retain record has the same text as a forget "
        f"record ({format_example(retain[first.index])[:60]!r}...)")
