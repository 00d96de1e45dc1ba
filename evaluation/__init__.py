"""Evaluation of unlearned models: metrics, verdicts and signed certificates.

Pure Python + torch (no Django). See DESIGN §7 (evaluation) and §8 (certificate).
Modules: :mod:`.rouge`, :mod:`.generation`, :mod:`.scoring`, :mod:`.mia`, :mod:`.stats`,
:mod:`.report`, :mod:`.muse` (MUSE-News profile), :mod:`.tofu` (TOFU profiles ``tofu`` / ``tofu_paper``, in :mod:`.profiles`),
:mod:`.runner` (``python -m evaluation``), :mod:`.verdicts`, :mod:`.certificate`. Heavy modules (torch,
transformers) are imported lazily by attribute access.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "rouge_l_f1": "rouge",
    "UnicodeTokenizer": "rouge",
    "greedy_generate": "generation",
    "greedy_generate_detailed": "generation",
    "KNOWMEM_STOP_STRINGS": "generation",
    "token_logprobs": "scoring",
    "token_statistics": "scoring",
    "min_k_score": "scoring",
    "mia_auc": "mia",
    "privleak": "mia",
    "MetricValue": "stats",
    "EvaluationProfile": "report",
    "evaluate_qa_model": "report",
    "Thresholds": "verdicts",
    "compute_verdicts": "verdicts",
    "canonical_json": "certificate",
    "load_or_create_signing_key": "certificate",
    "key_id": "certificate",
    "sign_certificate": "certificate",
    "verify_certificate": "certificate",
    "VerificationResult": "certificate",
    "render_certificate_html": "certificate",
    "rouge_l_recall": "rouge",
    "privleak_metric": "mia",
    "MuseNewsProfile": "muse",
    "evaluate_muse_news": "muse",
    "knowmem_prompt": "muse",
    "exact_memorised": "muse",
    "TofuProfile": "tofu",
    "evaluate_tofu": "tofu",
    "answer_logprobs": "tofu",
    "truth_ratio": "tofu",
    "harmonic_mean": "tofu",
    "model_utility": "tofu",
    "forget_quality": "tofu",
    "tofu_profile": "tofu",
    "aggregate_tofu": "tofu",
    "run_evaluation": "runner",
    "load_model": "runner",
    "format_table": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
