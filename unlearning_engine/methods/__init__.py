"""Registry of unlearning methods (DESIGN §5, §11).

A method name may have one implementation per model family (``retrain`` for causal LMs and for
classifiers are different modules); each implementation declares ``families``. ``get_method(name,
family)`` picks the one serving ``family`` and raises
:class:`~unlearning_engine.errors.MethodFamilyError` (an UnlearningInputError) naming the families
the method supports when there is none.

``run_unlearning(req)`` validates the request completely (empty forget set, forget/retain
overlap, unknown/invalid hyper-parameters, missing artifact directories) and raises
:class:`~unlearning_engine.errors.UnlearningInputError` before any training starts.
"""
from __future__ import annotations

from ..errors import MethodFamilyError, UnknownMethodError
from .base import Method, UnlearningRequest, UnlearningResult, check_disjoint
from .classifier import CLASSIFIER_METHODS
from .dp2 import DP2
from .eco import ECO
from .ga import GA, GD, KL
from .l1_sparse import L1Sparse
from .npo_gd import NPO, NPOGD, NPOKL, npo_loss
from .retrain import Retrain
from .task_vector import TaskVector
from .whp import WHP

#: causal-LM implementations by name (the default family)
_REGISTRY: dict[str, type[Method]] = {
    m.name: m for m in (Retrain, DP2, GA, GD, KL, NPO, NPOGD, NPOKL, TaskVector, WHP, L1Sparse, ECO)}
#: every implementation: name -> [classes], each with its ``families``
_IMPLEMENTATIONS: dict[str, list[type[Method]]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Register a Method subclass under ``cls.name`` for its ``families`` (usable as a decorator);
    a later registration for the same name and family replaces the earlier one."""
    if not cls.name:
        raise ValueError("method class needs a name")
    impls = [c for c in _IMPLEMENTATIONS.get(cls.name, []) if not (set(c.families) & set(cls.families))]
    _IMPLEMENTATIONS[cls.name] = [*impls, cls]
    if "causal_lm" in cls.families:
        _REGISTRY[cls.name] = cls
    return cls


for _cls in (*_REGISTRY.values(), *CLASSIFIER_METHODS):
    register_method(_cls)


def available_methods(family: str | None = "causal_lm") -> list[str]:
    """Sorted names of the methods serving ``family`` (default the causal LMs, as before the
    classifier families; ``None``: every family's)."""
    return sorted(n for n, impls in _IMPLEMENTATIONS.items()
                  if family is None or any(family in c.families for c in impls))


def method_families(name: str) -> list[str]:
    """Sorted families the method ``name`` serves ([] for an unknown name)."""
    return sorted({f for c in _IMPLEMENTATIONS.get(name, []) for f in c.families})


def method_class(name: str, family: str = "causal_lm") -> type[Method] | None:
    """The implementation of ``name`` for ``family`` (None when there is none)."""
    return next((c for c in _IMPLEMENTATIONS.get(name, []) if family in c.families), None)


def method_defaults(family: str = "causal_lm") -> dict[str, dict]:
    """{method: its default hyper-parameters} of every method serving ``family`` (causal LMs:
    preset "tiny")."""
    import copy

    if family == "causal_lm":
        return {n: copy.deepcopy(_REGISTRY[n].defaults) for n in available_methods(family)}
    return {n: copy.deepcopy(get_method(n, family).defaults) for n in available_methods(family)}


def get_method(name: str, family: str = "causal_lm") -> Method:
    """Instance of the method ``name`` for ``family``.

    Raises:
        UnknownMethodError: unknown ``name`` (an UnlearningInputError).
        MethodFamilyError: ``name`` exists but does not serve ``family``; the message names the
            families it supports.
    """
    if name not in _IMPLEMENTATIONS:
        raise UnknownMethodError(
            f"unknown unlearning method {name!r}; available: {available_methods(None)}") from None
    cls = method_class(name, family)
    if cls is None:
        raise MethodFamilyError(
            f"method {name!r} does not serve the {family} family; it supports: {', '.join(method_families(name))} "
            f"(methods for {family}: {', '.join(available_methods(family))})")
    return cls(family) if family != "causal_lm" else cls()


def run_unlearning(req: UnlearningRequest) -> UnlearningResult:
    """Validate ``req`` then run its method for ``req.family``; returns the :class:`UnlearningResult`.

    Raises:
        UnknownMethodError, MethodFamilyError: unknown ``req.method`` / not for ``req.family``.
        UnlearningInputError: invalid request (raised before any training).
    """
    return get_method(req.method, req.family).run(req)


__all__ = ["Method", "UnlearningRequest", "UnlearningResult", "available_methods", "get_method",
           "run_unlearning", "register_method", "check_disjoint", "npo_loss", "method_defaults",
           "method_families", "method_class"]
