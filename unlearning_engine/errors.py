"""Exceptions raised by the unlearning engine.

All input problems that can be detected before any training starts are reported as
:class:`UnlearningInputError` (a ``ValueError``) so that callers (the Django service layer)
can turn them into a 4xx-style "bad request" without retrying the job.
"""


class UnlearningInputError(ValueError):
    """Invalid input detected before training (empty forget set, overlap, bad hyper-parameter...)."""


class UnknownMethodError(UnlearningInputError):
    """The requested unlearning method is not registered (see ``available_methods()``)."""


class PrivacyBudgetError(RuntimeError):
    """The achieved ε recomputed by the accountant exceeds the target ε (never certify then)."""
