"""Registry of unlearning methods (DESIGN §5).

``run_unlearning(req)`` validates the request completely (empty forget set, forget/retain
overlap, unknown/invalid hyper-parameters, missing artifact directories) and raises
:class:`~unlearning_engine.errors.UnlearningInputError` before any training starts.
"""
from __future__ import annotations

from ..errors import UnknownMethodError
from .base import Method, UnlearningRequest, UnlearningResult, check_disjoint
from .dp2 import DP2
from .eco import ECO
from .ga import GA, GD, KL
from .l1_sparse import L1Sparse
from .npo_gd import NPO, NPOGD, NPOKL, npo_loss
from .retrain import Retrain
from .task_vector import TaskVector
from .whp import WHP

_REGISTRY: dict[str, type[Method]] = {
    m.name: m for m in (Retrain, DP2, GA, GD, KL, NPO, NPOGD, NPOKL, TaskVector, WHP, L1Sparse, ECO)}


def register_method(cls: type[Method]) -> type[Method]:
    """Register a Method subclass under ``cls.name`` (usable as a decorator)."""
    if not cls.name:
        raise ValueError("method class needs a name")
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Sorted names of the registered methods."""
    return sorted(_REGISTRY)


def method_defaults() -> dict[str, dict]:
    """{method: its default hyper-parameters (preset "tiny")} of every registered method."""
    import copy
    return {n: copy.deepcopy(c.defaults) for n, c in sorted(_REGISTRY.items())}


def get_method(name: str) -> Method:
    """Instance of the method ``name``; raises UnknownMethodError (an UnlearningInputError)."""
    try:
        return _REGISTRY[name]()
    except (KeyError, TypeError):
        raise UnknownMethodError(
            f"unknown unlearning method {name!r}; available: {available_methods()}") from None


def run_unlearning(req: UnlearningRequest) -> UnlearningResult:
    """Validate ``req`` then run its method; returns the :class:`UnlearningResult`.

    Raises:
        UnknownMethodError: unknown ``req.method``.
        UnlearningInputError: invalid request (raised before any training).
    """
    return get_method(req.method).run(req)


__all__ = ["Method", "UnlearningRequest", "UnlearningResult", "available_methods", "get_method",
           "run_unlearning", "register_method", "check_disjoint", "npo_loss", "method_defaults"]
