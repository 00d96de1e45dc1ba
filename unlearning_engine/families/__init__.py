"""Model families (DESIGN §11): a family is a place (its own modules), not a flag.

``causal_lm`` lives in the original modules (:mod:`unlearning_engine.modeling`, ``training``,
``methods/*``); the classifier families (``image_classifier``, ``tabular_classifier``) live in
:mod:`unlearning_engine.families.classifier` and reuse the shared loop
(:mod:`unlearning_engine.loop`), optimiser/schedule (:mod:`unlearning_engine.training`) and
subject-level DP-SGD (:mod:`unlearning_engine.dp_user`, :mod:`unlearning_engine.dp_accounting`).
"""
from __future__ import annotations

from ..errors import UnlearningInputError

CAUSAL_LM = "causal_lm"
IMAGE_CLASSIFIER = "image_classifier"
TABULAR_CLASSIFIER = "tabular_classifier"
FAMILIES: tuple[str, ...] = (CAUSAL_LM, IMAGE_CLASSIFIER, TABULAR_CLASSIFIER)
CLASSIFIER_FAMILIES = frozenset({IMAGE_CLASSIFIER, TABULAR_CLASSIFIER})
#: evaluation profile of each family (DESIGN §11 table; causal LMs choose muse/tofu by corpus)
FAMILY_PROFILES = {CAUSAL_LM: "muse", IMAGE_CLASSIFIER: "classifier", TABULAR_CLASSIFIER: "classifier"}


def check_family(family: str) -> str:
    """``family`` if known; raises UnlearningInputError naming the known ones."""
    if family not in FAMILIES:
        raise UnlearningInputError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    return family
