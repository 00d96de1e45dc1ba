"""ECO guard: prompt classifier + embedding corruption at inference (DESIGN §5 ``eco``).

Source: Liu et al., "Large Language Model Unlearning via Embedding-Corrupted Prompts" (ECO),
arXiv 2406.07933, §3: a classifier flags prompts about the forget target; for a
flagged prompt a corruption is applied to its input embeddings (here the paper's "zero-out top-k"
corruption: the k embedding dimensions of largest magnitude of every prompt token are set to 0).
The weights never change: this is inference-time suppression, never certified as erasure.

The classifier is a scikit-learn logistic regression on TF-IDF features (word 1–2-grams) of the
forget prompts (label 1) vs the retain prompts (label 0), class-balanced. It is stored as plain JSON
(``eco.json`` in the artifact dir: vocabulary, idf, coefficients, intercept, threshold, k) and
evaluated without pickles. The text classified is the part of the decoded prompt after its last
``"Question:"`` (so a few-shot prompt is judged by its final question), else the whole prompt.

Hook mechanics: a forward pre-hook on the model classifies each row of ``input_ids`` when the call
starts a new sequence (no KV cache yet) and a forward hook on the input embedding module corrupts
the embeddings of flagged rows in that call; decoding steps that reuse the cache are untouched.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

ECO_FILE = "eco.json"
_QUESTION = re.compile(r"Question:")


def classified_segment(text: str) -> str:
    """The part of ``text`` the classifier sees (after the last ``"Question:"``, else all)."""
    parts = _QUESTION.split(text)
    seg = parts[-1] if len(parts) > 1 else text
    return seg.split("\nAnswer:")[0].strip() or text.strip()


class EcoClassifier:
    """TF-IDF + logistic-regression prompt classifier evaluated from its JSON form."""

    def __init__(self, cfg: dict):
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        v = cfg["vectorizer"]
        self.vec = TfidfVectorizer(lowercase=v["lowercase"], ngram_range=tuple(v["ngram_range"]),
                                   sublinear_tf=v["sublinear_tf"], norm=v["norm"],
                                   token_pattern=v["token_pattern"])
        self.vec.vocabulary_ = {k: int(i) for k, i in cfg["vocabulary"].items()}
        self.vec.idf_ = np.asarray(cfg["idf"], dtype=np.float64)
        self.coef = np.asarray(cfg["coef"], dtype=np.float64)
        self.intercept = float(cfg["intercept"])
        self.threshold = float(cfg["threshold"])

    def proba(self, texts: list[str]):
        X = self.vec.transform([classified_segment(t) for t in texts])
        z = X @ self.coef + self.intercept
        return 1.0 / (1.0 + _np_exp(-z))

    def flags(self, texts: list[str]) -> list[bool]:
        return [bool(p >= self.threshold) for p in self.proba(texts)]


def _np_exp(z):
    import numpy as np
    return np.exp(np.clip(z, -50, 50))


def fit_classifier(positive: list[str], negative: list[str], *, C: float, threshold: float,
                   top_k: int) -> dict:
    """Fit the classifier on prompts (positive = forget) and return its JSON config."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    params = dict(lowercase=True, ngram_range=[1, 2], sublinear_tf=True, norm="l2",
                  token_pattern=r"(?u)\b\w+\b")
    vec = TfidfVectorizer(**{**params, "ngram_range": (1, 2)})
    texts = [classified_segment(t) for t in positive + negative]
    X = vec.fit_transform(texts)
    y = [1] * len(positive) + [0] * len(negative)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    clf.fit(X, y)
    return {"version": 1, "kind": "eco", "corruption": "zero_top_k", "top_k": int(top_k),
            "threshold": float(threshold), "classified_text": "after last 'Question:'",
            "vectorizer": params,
            "vocabulary": {k: int(i) for k, i in sorted(vec.vocabulary_.items())},
            "idf": [float(x) for x in vec.idf_], "coef": [float(x) for x in clf.coef_[0]],
            "intercept": float(clf.intercept_[0])}


def zero_top_k(emb: torch.Tensor, k: int) -> torch.Tensor:
    """Copy of ``emb`` (..., H) with the k largest-|value| dimensions of each vector set to 0."""
    k = max(0, min(int(k), emb.shape[-1]))
    if k == 0:
        return emb
    idx = emb.abs().topk(k, dim=-1).indices
    return emb.scatter(-1, idx, torch.zeros_like(idx, dtype=emb.dtype))


class EcoGuard:
    """Attaches/detaches the ECO hooks on a causal LM (see module docstring).

    ``last_flags`` holds the flags of the last classified batch (list of bools).
    """

    def __init__(self, model, tokenizer, cfg: dict):
        self.model, self.tok, self.cfg = model, tokenizer, cfg
        self.clf = EcoClassifier(cfg)
        self.top_k = int(cfg["top_k"])
        self.last_flags: list[bool] = []
        self._flags: torch.Tensor | None = None
        self._corrupt = False
        self._handles = []

    def classify(self, texts: list[str]) -> list[bool]:
        return self.clf.flags(texts)

    def attach(self) -> EcoGuard:
        if not self._handles:
            self._handles = [
                self.model.register_forward_pre_hook(self._pre, with_kwargs=True),
                self.model.get_input_embeddings().register_forward_hook(self._emb),
            ]
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._corrupt = False

    def _pre(self, _module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        pkv = kwargs.get("cache")
        if pkv is None:
            pkv = kwargs.get("past_key_values")
        past = 0
        if pkv is not None and hasattr(pkv, "get_seq_length"):
            past = int(pkv.get_seq_length())
        if ids is None or past > 0:
            self._corrupt = False
            return None
        texts = self.tok.batch_decode(ids.tolist(), skip_special_tokens=True)
        self.last_flags = self.classify(texts)
        self._flags = torch.tensor(self.last_flags, device=ids.device)
        self._corrupt = bool(self._flags.any())
        return None

    def _emb(self, _module, _inp, out):
        if not self._corrupt or self._flags is None or self._flags.shape[0] != out.shape[0]:
            return None
        out = out.clone()
        out[self._flags] = zero_top_k(out[self._flags], self.top_k)
        return out


def attach_eco(model, tokenizer, cfg_or_dir) -> EcoGuard:
    """Attach the ECO hooks of a config dict or an artifact dir (its ``eco.json``) to ``model``;
    the guard is kept as ``model.eco_guard``. Returns the guard."""
    cfg = cfg_or_dir
    if not isinstance(cfg, dict):
        cfg = json.loads((Path(cfg_or_dir) / ECO_FILE).read_text(encoding="utf-8"))
    guard = EcoGuard(model, tokenizer, cfg).attach()
    model.eco_guard = guard
    return guard


def load_eco_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer, guard) of an ``eco`` artifact with its hooks attached."""
    from .modeling import load_artifact

    model, tok = load_artifact(path, device=device, with_eco=False)
    return model, tok, attach_eco(model, tok, path)


__all__ = ["ECO_FILE", "EcoClassifier", "EcoGuard", "attach_eco", "fit_classifier",
           "load_eco_model", "zero_top_k", "classified_segment"]
