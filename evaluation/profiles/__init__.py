"""Evaluation profiles, one module per profile (DESIGN §11 target layout
``evaluation/profiles/<profile>.py``): :mod:`.tofu` (the ``tofu`` profile: the TOFU
benchmark code's conventions), :mod:`.tofu_paper` (the ``tofu_paper`` profile: the paper's
literal formulas), :mod:`.tofu_metrics` (their formulas on per-question quantities) and
:mod:`.restor` (the ``restor`` profile: knowledge recovery after corruption, RESTOR arXiv
2411.00204; formulas :mod:`.restor_metrics`, certificate block :mod:`.restor_attachment`,
runner :mod:`evaluation.restor_runner`).
The MUSE-News profile is still :mod:`evaluation.muse`.
"""
