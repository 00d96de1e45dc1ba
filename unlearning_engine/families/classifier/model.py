"""Classifier networks: a feature extractor plus a linear head (DESIGN §11 model contract).

``ClassifierNet.forward(x)`` takes raw feature rows ``x`` of shape (B, D) (D = prod(input_shape):
the flattened pixels of an image, or a tabular row) and returns ``(logits, embedding)`` of shapes
(B, n_classes) and (B, embed_dim). The input transform is fixed and data-independent (so that no
statistic of the training set, hence of D_f, hides in the artifact, and DP training stays DP):
``"scale"`` divides by ``input_scale`` (digits: 16, the pixel maximum of ``load_digits``),
``"log1p"`` applies log(1 + max(x, 0)) (the breast-cancer features are non-negative with scales
from 1e-3 to 1e3).

Architectures (small on purpose: a retrain takes seconds on 2 CPU cores):
- ``cnn`` (images, input_shape (C, H, W)): conv3×3(C→16)-ReLU-conv3×3(16→32)-ReLU-maxpool2 →
  flatten → linear(→embed_dim)-ReLU (the extractor), then linear(embed_dim→n_classes) (the head).
- ``mlp`` (tabular, input_shape (D,)): linear(D→hidden)-ReLU-linear(hidden→embed_dim)-ReLU, head
  linear(embed_dim→n_classes).
No batch normalisation (per-sample DP gradients must not mix examples).

Artifacts: ``model.safetensors`` (the state dict) and ``classifier.json`` (the config), the same
weights digest rule as the LMs (:func:`unlearning_engine.modeling.weights_sha256`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ...errors import UnlearningInputError
from ...modeling import WEIGHTS_NAME, weights_sha256

CONFIG_NAME = "classifier.json"
ARCHS = ("cnn", "mlp")
TRANSFORMS = ("scale", "log1p")


@dataclass
class ClassifierConfig:
    """Architecture of a classifier artifact (see module docstring)."""

    family: str
    arch: str
    input_shape: list
    n_classes: int
    embed_dim: int = 64
    hidden: int = 64
    input_transform: str = "scale"
    input_scale: float = 1.0
    class_names: list = field(default_factory=list)

    def __post_init__(self):
        if self.arch not in ARCHS or self.input_transform not in TRANSFORMS:
            raise UnlearningInputError(f"classifier config: arch must be one of {ARCHS}, "
                                       f"input_transform one of {TRANSFORMS}")
        if self.n_classes < 2 or not self.input_shape:
            raise UnlearningInputError("classifier config: need n_classes >= 2 and an input_shape")
        if self.arch == "cnn" and len(self.input_shape) != 3:
            raise UnlearningInputError("classifier config: a cnn needs input_shape (C, H, W)")

    @property
    def n_features(self) -> int:
        return int(math.prod(self.input_shape))

    def to_dict(self) -> dict:
        return asdict(self)


class ClassifierNet(nn.Module):
    """Feature extractor + head; ``forward(x) -> (logits, embedding)`` (module docstring)."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.arch == "cnn":
            c, h, w = cfg.input_shape
            self.extractor = nn.Sequential(
                nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * (h // 2) * (w // 2), cfg.embed_dim), nn.ReLU())
        else:
            self.extractor = nn.Sequential(
                nn.Linear(cfg.n_features, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.embed_dim), nn.ReLU())
        self.head = nn.Linear(cfg.embed_dim, cfg.n_classes)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Raw rows (B, D) → the extractor's input (fixed transform, reshaped to input_shape)."""
        x = x.float()
        x = x / self.cfg.input_scale if self.cfg.input_transform == "scale" else torch.log1p(x.clamp(min=0))
        return x.view(x.shape[0], *self.cfg.input_shape)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) raw rows → (B, embed_dim) embeddings."""
        return self.extractor(self.prepare(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.embed(x)
        return self.head(z), z


def build_classifier(cfg: ClassifierConfig, seed: int = 0) -> ClassifierNet:
    """A freshly initialised network (PyTorch default init under ``torch.manual_seed(seed)``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ClassifierNet(cfg)


def save_classifier(model: ClassifierNet, out_dir: str | Path) -> str:
    """Write ``model.safetensors`` + ``classifier.json`` to ``out_dir``; returns the weights sha256."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME))
    (out / CONFIG_NAME).write_text(json.dumps(model.cfg.to_dict(), sort_keys=True, indent=1))
    return weights_sha256(out)


def is_classifier_artifact(path: str | Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file() and (Path(path) / WEIGHTS_NAME).is_file()


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> ClassifierNet:
    """Load an artifact written by :func:`save_classifier` (strict state-dict load), eval mode.

    Raises:
        UnlearningInputError: not a classifier artifact directory, or weights that do not fit the config.
    """
    from safetensors.torch import load_file

    p = Path(path)
    if not is_classifier_artifact(p):
        raise UnlearningInputError(f"{str(p)!r} is not a classifier artifact (needs {WEIGHTS_NAME} and {CONFIG_NAME})")
    try:
        cfg = ClassifierConfig(**json.loads((p / CONFIG_NAME).read_text()))
        model = ClassifierNet(cfg)
        model.load_state_dict(load_file(str(p / WEIGHTS_NAME)), strict=True)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UnlearningInputError(f"classifier artifact {str(p)!r} does not load: {exc}") from None
    return model.to(device).eval()
