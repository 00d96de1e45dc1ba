"""Image and tabular classifiers as a model family (DESIGN §11; issue 19).

- :mod:`.model`: feature extractor + head, ``forward(x) -> (logits, embedding)``; safetensors
  artifacts (``model.safetensors`` + ``classifier.json``).
- :mod:`.data`: :class:`LabeledExample` records and the offline default corpora (scikit-learn's
  bundled ``load_digits`` and ``load_breast_cancer``).
- :mod:`.train`: the default training recipe on the shared loop.
- :mod:`.dp`: subject-level DP-SGD of the DP base (DP2 step 1) on the shared DP mechanism.
- methods: :mod:`unlearning_engine.methods.classifier`.
"""
from .data import LabeledExample, breast_cancer_corpus, digits_corpus, to_tensors
from .model import (
           ClassifierConfig,
           ClassifierNet,
           build_classifier,
           load_classifier,
           save_classifier,
)

__all__ = ["LabeledExample", "digits_corpus", "breast_cancer_corpus", "to_tensors", "ClassifierConfig",
           "ClassifierNet", "build_classifier", "load_classifier", "save_classifier"]
