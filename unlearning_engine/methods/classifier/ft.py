"""``ft`` (fine-tune): continue training θ_o on D_r only, so that D_f is "catastrophically
forgotten" (Warnecke et al. 2023; as the FT baseline of Jia et al., NeurIPS 2023, arXiv
2304.04934, §5 and Unlearn-Sparse ``unlearn/FT.py``): minimise mean CE(D_r) for a few epochs.
"""
from __future__ import annotations

from .base import RetainFineTune


class ClassifierFT(RetainFineTune):
    name = "ft"
    description = "fine-tune the original model on the retain set for a few epochs"
    defaults = {"epochs": 4, "lr": 2e-3, "batch_size": 32, "weight_decay": 0.0}
