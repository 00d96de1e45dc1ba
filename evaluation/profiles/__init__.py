"""Evaluation profiles, one module per profile (DESIGN §11 target layout
``evaluation/profiles/<profile>.py``): :mod:`.tofu` (the ``tofu`` profile: the TOFU
benchmark code's conventions), :mod:`.tofu_paper` (the ``tofu_paper`` profile: the paper's
literal formulas) and :mod:`.tofu_metrics` (their formulas on per-question quantities).
The MUSE-News profile is still :mod:`evaluation.muse`.
"""
