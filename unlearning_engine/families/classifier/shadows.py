"""Shadow models for U-LiRA (:mod:`evaluation.profiles.classifier_ulira`; Hayes et al., arXiv
2403.01218 §4): the same pipeline as the real model, on another training set and seed.

:class:`ShadowPipeline` is the pair of callables U-LiRA needs: ``train(k, train_set, seed)``
builds a fresh initialisation (``build_classifier(cfg, seed)``), trains the family recipe on
``train_set`` and, when the method needs one, a subject-level DP base on it (DP2 step 1); it
returns the shadow's artifact directories. ``unlearn(world, forget, retain, k)`` runs the chosen
method (:func:`unlearning_engine.methods.run_unlearning`) from those directories and loads the
unlearned shadow. A shadow's worlds do not depend on the method, so a caller evaluating several
methods trains them once (``ulira_shadow_statistics(..., worlds=...)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .model import ClassifierConfig, build_classifier, load_classifier, save_classifier
from .train import DEFAULT_RECIPE, DP_BASE_RECIPE, train_classifier


def dp_kwargs(dp_recipe: dict | None) -> dict:
    """:data:`DP_BASE_RECIPE` overridden by a model's ``dp_base`` block, with the service's one batch
    rule (a block giving ``batch_size`` or ``sample_rate`` replaces both) and without seed/device."""
    dp_recipe = {k: v for k, v in (dp_recipe or {}).items() if k not in ("seed", "device") and v is not None}
    base = dict(DP_BASE_RECIPE)
    if "batch_size" in dp_recipe or "sample_rate" in dp_recipe:
        base.pop("batch_size", None)
        base.pop("sample_rate", None)
    return {**base, **dp_recipe}


@dataclass
class ShadowPipeline:
    """Shadow trainer/unlearner under ``work_dir`` (``shadow-<k>/{base,model,dp_base,<method>}``).

    ``recipe``: training recipe (default the family's :data:`DEFAULT_RECIPE`); ``dp_recipe``: DP
    base recipe (default :data:`DP_BASE_RECIPE`), trained only when ``needs_dp_base``;
    ``hyperparameters``: the method's overrides, as in the real job.
    """

    cfg: ClassifierConfig
    work_dir: Path
    method: str = "ft"
    hyperparameters: dict = field(default_factory=dict)
    recipe: dict | None = None
    dp_recipe: dict | None = None
    needs_dp_base: bool = False
    device: str | None = "cpu"

    def train(self, k: int, train_set: list, seed: int) -> dict:
        """Train shadow ``k``; returns ``{"base_dir", "model_dir", "dp_base_dir"?}`` (str paths)."""
        root = Path(self.work_dir) / f"shadow-{k}"
        recipe = dict(self.recipe or DEFAULT_RECIPE[self.cfg.family])
        save_classifier(build_classifier(self.cfg, seed), root / "base")
        model = build_classifier(self.cfg, seed)
        train_classifier(model, train_set, seed=seed, **{key: recipe[key] for key in
                                                        ("epochs", "lr", "batch_size", "weight_decay") if key in recipe})
        save_classifier(model, root / "model")
        world = {"base_dir": str(root / "base"), "model_dir": str(root / "model"), "seed": seed}
        if self.needs_dp_base:
            from .dp import train_dp_classifier

            train_dp_classifier(root / "base", train_set, root / "dp_base", seed=seed, device=self.device,
                                **dp_kwargs(self.dp_recipe))
            world["dp_base_dir"] = str(root / "dp_base")
        return world

    def for_method(self, method: str, hyperparameters: dict | None = None) -> ShadowPipeline:
        """The same shadows (same work_dir, recipe) unlearned with another method."""
        return ShadowPipeline(self.cfg, self.work_dir, method, dict(hyperparameters or {}), self.recipe,
                              self.dp_recipe, self.needs_dp_base, self.device)

    def unlearn(self, world: dict, forget: list, retain: list, k: int):
        """Run ``self.method`` on shadow ``k`` (forget = its T_in(k)); returns the loaded model."""
        from ...methods import UnlearningRequest, run_unlearning

        out = Path(world["model_dir"]).parent / f"unlearned-{self.method}"
        run_unlearning(UnlearningRequest(
            method=self.method, family=self.cfg.family, model_dir=world["model_dir"], output_dir=str(out),
            forget=forget, retain=retain, base_dir=world["base_dir"], dp_base_dir=world.get("dp_base_dir"),
            hyperparameters=dict(self.hyperparameters), seed=int(world["seed"]), device=self.device))
        return load_classifier(out)
