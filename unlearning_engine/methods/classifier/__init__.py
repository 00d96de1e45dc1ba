"""Unlearning methods of the classifier families (DESIGN §11), one module each."""
from .base import ClassifierMethod, check_disjoint_labeled
from .dp2 import ClassifierDP2
from .ft import ClassifierFT
from .ga import ClassifierGA
from .l1_sparse import ClassifierL1Sparse
from .laf import LAF, LAFR
from .retrain import ClassifierRetrain
from .rl import ClassifierRL

CLASSIFIER_METHODS = (ClassifierRetrain, ClassifierDP2, ClassifierFT, ClassifierGA, ClassifierRL,
                      ClassifierL1Sparse, LAF, LAFR)

__all__ = ["ClassifierMethod", "check_disjoint_labeled", "CLASSIFIER_METHODS"]
