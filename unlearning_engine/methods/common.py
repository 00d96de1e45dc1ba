"""Machinery shared by the weight-changing methods: loading θ on its device, LoRA wrapping, the
reference model, long-text policy, the shared loop with checkpoints, collapse check, saving.

A subclass of :class:`TrainedMethod` declares its data use (``drive``: which set defines an epoch,
``pair``: whether each step also sees a batch of the other set) and implements
:meth:`TrainedMethod.objective`; multi-phase methods (task_vector, whp) override
:meth:`TrainedMethod.train`.

Common hyper-parameters (:data:`COMMON_DEFAULTS`):
- ``preset``: size preset (:mod:`unlearning_engine.presets`), default ``"tiny"``;
- ``lora``: ``null`` (full-parameter) or ``{"r", "alpha", "dropout", "target_modules"}``;
- ``collapse_check`` (true) and ``collapse_nll_factor`` (3.0): see :mod:`unlearning_engine.collapse`;
- ``on_long_text``: ``"truncate"`` (default: records longer than the model context are cut from
  the right keeping the final EOS, and counted in ``details["truncated"]``) or ``"reject"``
  (an :class:`UnlearningInputError` before any training);
- ``stop_forget_nll`` (methods that read D_f): ``null`` or a target mean forget NLL (nats/token);
  training stops after the first epoch that reaches it.
"""
from __future__ import annotations

import copy
import math
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..collapse import CollapseConfig, check_collapse, snapshot
from ..errors import UnlearningInputError
from ..hparams import v_bool, v_choice, v_lora, v_optional_positive, v_preset
from ..loop import LoopConfig, LoopStats, run_loop
from ..lora import ADAPTER_DIR, is_peft, merge, reference_of, save_adapter, wrap_lora
from ..modeling import load_artifact, save_artifact
from ..training import batch_nll, encode_example
from .base import Method, UnlearningRequest, UnlearningResult

COMMON_DEFAULTS: dict[str, Any] = {"preset": "tiny", "lora": None, "collapse_check": True,
                                   "collapse_nll_factor": 3.0, "on_long_text": "truncate"}
COMMON_VALIDATORS = {"preset": v_preset, "lora": v_lora, "collapse_check": v_bool,
                     "on_long_text": v_choice("truncate", "reject"),
                     "stop_forget_nll": v_optional_positive}
CHECKPOINTS_DIR = "checkpoints"


def with_common(d: dict, *, stop: bool = True) -> dict:
    """Method defaults ``d`` plus the common ones (and ``stop_forget_nll`` when ``stop``)."""
    out = {**d, **COMMON_DEFAULTS}
    if stop:
        out["stop_forget_nll"] = None
    return out


def resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def context_length(model, tok) -> int | None:
    """Longest sequence the model accepts: min(config.max_position_embeddings, tokenizer max)."""
    lims = [getattr(model.config, "max_position_embeddings", None),
            getattr(tok, "model_max_length", None)]
    lims = [x for x in lims if x is not None and x < 1_000_000]
    return min(lims) if lims else None


class RunContext:
    """State of one method run (request, resolved hyper-parameters, device, counters)."""

    def __init__(self, method: TrainedMethod, req: UnlearningRequest, hp: dict):
        self.method, self.req, self.hp = method, req, hp
        self.device = resolve_device(req.device)
        self.out = Path(req.output_dir)
        self.ckpt_root = self.out / CHECKPOINTS_DIR
        self.truncated: dict[str, int] = {}
        self.tok = None
        self.max_len: int | None = None
        self.stats: dict[str, LoopStats] = {}

    def load(self, path: str):
        """(model on ``self.device``, tokenizer) from an artifact dir; an ECO hook is never attached."""
        model, tok = load_artifact(path, device=self.device, with_eco=False)
        self.tok = tok
        self.max_len = context_length(model, tok)
        return model, tok

    def encode(self, examples, which: str):
        """Encode records, applying the ``on_long_text`` policy (see module docstring)."""
        out, n_long = [], 0
        for ex in examples:
            full = encode_example(self.tok, ex, None)
            if self.max_len is not None and len(full.input_ids) > self.max_len:
                n_long += 1
                if self.hp.get("on_long_text") == "reject":
                    raise UnlearningInputError(
                        f"a {which} record has {len(full.input_ids)} tokens, more than the model "
                        f"context of {self.max_len} (on_long_text='reject')")
                full = encode_example(self.tok, ex, self.max_len)
            out.append(full)
        self.truncated[which] = n_long
        return out

    def maybe_lora(self, model):
        return wrap_lora(model, self.hp["lora"]) if self.hp.get("lora") else model

    def frozen_copy(self, model):
        """Frozen deep copy (eval, no grad) of a plain model."""
        ref = copy.deepcopy(model).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref

    def loop(self, model, drive, other, objective, *, phase: str, epochs: int, lr: float,
             batch_size: int, pair: bool, main: bool = True, stop_on=None, max_steps: int | None = None,
             **kw) -> LoopStats:
        """Run the shared loop; checkpoints under ``checkpoints/`` (main phase) or
        ``checkpoints/<phase>/`` (auxiliary phases)."""
        ckpt = self.ckpt_root if main else self.ckpt_root / phase
        fp = {"method": self.method.name, "phase": phase, "hp": self.hp, "seed": self.req.seed,
              "n_drive": len(drive), "n_other": len(other or [])}
        cfg = LoopConfig(epochs=epochs, lr=lr, batch_size=batch_size, pair=pair, phase=phase,
                         checkpoint_dir=ckpt, resume=self.req.resume, fingerprint=fp,
                         stop_forget_nll=self.hp.get("stop_forget_nll") if stop_on else None,
                         max_steps=max_steps)
        st = run_loop(model, self.tok.pad_token_id, drive, other, objective, cfg,
                      seed=self.req.seed, progress=self.req.progress, forget_for_stop=stop_on, **kw)
        self.stats[phase] = st
        return st

    def finish(self, model):
        """Plain model to save: with LoRA the adapter is saved to ``output_dir/adapter`` and the
        merged model returned; without, ``model`` itself."""
        if is_peft(model):
            save_adapter(model, self.out)
            return merge(model)
        return model


def nll_term(model, batch) -> tuple[torch.Tensor, int]:
    """Mean NLL per supervised token of a batch (nats) and its token count."""
    return batch_nll(model, batch)


def kl_retain_term(model, batch, frozen_ref=None) -> torch.Tensor:
    """KL(p_ref ‖ p_θ) of the next-token distributions, averaged over the supervised tokens of a
    retain batch (nats). π_ref = ``frozen_ref`` or (LoRA) the base with adapters disabled.

    Source: TOFU (Maini et al., arXiv 2401.06121, §5 "KL Minimization") — the retain term keeps
    θ's predictive distribution on D_r close to the original model's.
    """
    kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              position_ids=batch.get("position_ids"), use_cache=False)
    logp = torch.log_softmax(model(**kw).logits[:, :-1, :].float(), dim=-1)
    with reference_of(model, frozen_ref) as ref:
        logq = torch.log_softmax(ref(**kw).logits[:, :-1, :].float(), dim=-1)
    mask = ((batch["labels"][:, 1:] != -100) & (batch["attention_mask"][:, 1:] == 1)).float()
    kl_tok = (logq.exp() * (logq - logp)).sum(-1)
    return (kl_tok * mask).sum() / mask.sum().clamp(min=1)


class TrainedMethod(Method):
    """A weight-changing method run on the shared loop (see module docstring)."""

    #: request attribute of the starting artifact
    start_from: ClassVar[str] = "model_dir"
    #: "forget" or "retain": the set whose shuffled batches define an epoch
    drive: ClassVar[str] = "forget"
    #: each step also gets a batch of the other set
    pair: ClassVar[bool] = False
    uses_forget: ClassVar[bool] = True
    uses_retain: ClassVar[bool] = True
    #: needs a frozen reference model (full-parameter) / the adapter-disabled base (LoRA)
    uses_reference: ClassVar[bool] = False
    needs_model_dir = True
    validators = COMMON_VALIDATORS

    def objective(self, ctx: RunContext, model, drive_batch, other_batch, state):
        """(loss, n_supervised_tokens, logs) of one step."""
        raise NotImplementedError

    def train(self, ctx: RunContext, model, f_enc, r_enc):
        """Default single-phase training; returns the plain (merged) model to save."""
        model = ctx.maybe_lora(model)
        ref = ctx.frozen_copy(model) if self.uses_reference and not is_peft(model) else None
        ctx.ref = ref
        drive, other = (f_enc, r_enc) if self.drive == "forget" else (r_enc, f_enc)
        hp = ctx.hp
        epochs, max_steps = self.budget(hp, len(drive))
        ctx.loop(model, drive, other if self.pair else None,
                 lambda m, db, ob, st: self.objective(ctx, m, db, ob, st),
                 phase=self.name, epochs=epochs, lr=hp["lr"], batch_size=hp["batch_size"],
                 pair=self.pair, stop_on=f_enc if "stop_forget_nll" in hp else None, max_steps=max_steps,
                 **self.loop_hooks(ctx, model))
        return ctx.finish(model)

    def budget(self, hp: dict, n_drive: int) -> tuple[int, int | None]:
        """(epochs, max_steps) of the main loop: ``hp["epochs"]`` full epochs over the drive set, or,
        when the method has a ``steps`` hyper-parameter set, exactly that many optimizer steps
        (⌈steps / ⌈n_drive / batch_size⌉⌉ epochs, the last one partial)."""
        steps = hp.get("steps")
        if not steps:
            return hp["epochs"], None
        per_epoch = math.ceil(n_drive / hp["batch_size"])
        return math.ceil(steps / per_epoch), int(steps)

    def loop_hooks(self, ctx: RunContext, model) -> dict:
        """Extra keyword arguments of :func:`run_loop` (``on_epoch_start``, ``after_step``...)."""
        return {}

    def extra_details(self, ctx: RunContext) -> dict:
        return {}

    def _run(self, req: UnlearningRequest, hp: dict) -> UnlearningResult:
        t0 = time.perf_counter()
        ctx = RunContext(self, req, hp)
        model, tok = ctx.load(getattr(req, self.start_from))
        f_enc = ctx.encode(req.forget, "forget") if self.uses_forget else []
        r_enc = ctx.encode(req.retain, "retain") if self.uses_retain and req.retain else []
        if self.drive == "retain" or self.pair:
            if not r_enc:
                raise UnlearningInputError(f"method {self.name!r} needs a non-empty retain set")
        ccfg = CollapseConfig(nll_factor=hp["collapse_nll_factor"])
        before = snapshot(model, tok, req.retain, ccfg) if hp["collapse_check"] else {}
        model = self.train(ctx, model, f_enc, r_enc)
        model.eval()
        details: dict[str, Any] = {}
        if hp["collapse_check"]:
            details["collapse_check"] = check_collapse(before, snapshot(model, tok, req.retain, ccfg), ccfg)
        sha = save_artifact(model, tok, ctx.out)
        shutil.rmtree(ctx.ckpt_root, ignore_errors=True)  # the final artifact supersedes them
        steps = sum(s.steps for s in ctx.stats.values())
        tokens = sum(s.tokens for s in ctx.stats.values())
        main = ctx.stats.get(self.name) or next(reversed(ctx.stats.values()))
        details.update({
            "start": self.start_from, "n_forget": len(req.forget), "n_retain": len(req.retain),
            "device": str(ctx.device), "lora": bool(hp.get("lora")),
            "adapter_dir": str(ctx.out / ADAPTER_DIR) if hp.get("lora") else None,
            "truncated": ctx.truncated, "context_length": ctx.max_len,
            "final_loss": main.final_loss, "epochs_run": main.epochs_run,
            "stopped_early": main.stopped_early,
            "resumed_from_epoch": {k: s.resumed_from_epoch for k, s in ctx.stats.items()},
        })
        if main.forget_nll_history:
            details["forget_nll_history"] = main.forget_nll_history
        details.update({f"final_{k}": v for k, v in main.last_logs.items()})
        details.update(self.extra_details(ctx))
        return UnlearningResult(method=self.name, output_dir=str(req.output_dir),
                                weights_sha256=sha, hyperparameters=hp, steps=steps, tokens=tokens,
                                wall_seconds=time.perf_counter() - t0,
                                changes_weights=self.changes_weights, details=details)
