"""Exceptions raised by the unlearning engine.

All input problems that can be detected before any training starts are reported as
:class:`UnlearningInputError` (a ``ValueError``) so that callers (the Django service layer)
can turn them into a 4xx-style "bad request" without retrying the job.
A run that trained but produced a degenerate model raises :class:`CollapseError`
(the job fails with that reason; the model is never certified).
"""


class UnlearningError(Exception):
    """Base class of every engine error that ends a job with a reason."""


class UnlearningInputError(UnlearningError, ValueError):
    """Invalid input detected before training (empty forget set, overlap, bad hyper-parameter...)."""


class UnknownMethodError(UnlearningInputError):
    """The requested unlearning method is not registered (see ``available_methods()``)."""


class MethodFamilyError(UnlearningInputError):
    """The method exists but does not serve the target model's family (DESIGN §11); the message
    names the families it supports."""


class PrivacyBudgetError(UnlearningError, RuntimeError):
    """The achieved ε recomputed by the accountant exceeds the target ε (never certify then)."""


class CollapseError(UnlearningError, RuntimeError):
    """The unlearned model collapsed (repetition, empty outputs, or retain NLL blown up).

    ``reason`` is a short human-readable explanation; ``stats`` the measured values.
    """

    def __init__(self, reason: str, stats: dict | None = None):
        super().__init__(f"model collapse detected: {reason}")
        self.reason = reason
        self.stats = stats or {}
