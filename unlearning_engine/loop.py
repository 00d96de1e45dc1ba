"""The shared training loop of every weight-changing method (DESIGN §5 "Training loops").

One loop for all objectives: AdamW with linear warm-up/decay
(:func:`~unlearning_engine.training.make_optimizer_and_schedule`), global gradient-norm clipping,
fp32 on CPU and bf16 autocast on CUDA (log-softmax always in fp32), seeded shuffling, a checkpoint
at the end of every epoch (``checkpoint_dir/epoch-N``, only the last one kept) with exact resume,
and an optional early stop when the forget-set NLL reaches a target.

An *objective* is a callable ``loss_fn(model, drive_batch, other_batch, state)`` returning
``(loss, n_supervised_tokens, logs)``. The "drive" set defines an epoch (its shuffled batches);
when ``pair=True`` every step also gets a batch of the other set drawn uniformly with
replacement (the retain batch of GD/KL/NPO objectives).
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .training import (
    EncodedExample,
    Progress,
    ProgressReporter,
    batches_for_epoch,
    collate,
    make_optimizer_and_schedule,
    seed_everything,
    token_logprobs_of_labels,
)

CHECKPOINT_FILE = "state.pt"


@dataclass
class LoopConfig:
    """Settings of one run of :func:`run_loop` (see module docstring)."""

    epochs: int
    lr: float
    batch_size: int
    pair: bool = False
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    phase: str = "train"
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    stop_forget_nll: float | None = None
    fingerprint: dict | None = None
    mixed_precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 on CPU) or "no"
    #: budget in optimizer steps: the run stops after this many steps (the last epoch is partial);
    #: ``None`` = ``epochs`` full epochs
    max_steps: int | None = None


@dataclass
class LoopState:
    """Passed to the objective and the hooks: 0-based ``epoch``, optimizer ``step`` done so far,
    ``total`` planned steps, and ``values`` (a dict hooks may fill, e.g. the ℓ1 weight γ_t)."""

    epoch: int
    step: int
    total: int
    values: dict = field(default_factory=dict)


@dataclass
class LoopStats:
    """What a loop did: optimizer steps, supervised tokens, wall seconds, mean loss of the last
    epoch, epochs completed, whether it stopped early, the epoch it resumed after (or None), the
    first and last step's logs, and the forget NLL after each epoch (when early stop is on)."""

    steps: int
    tokens: int
    wall_seconds: float
    final_loss: float
    epochs_run: int
    stopped_early: bool = False
    resumed_from_epoch: int | None = None
    first_logs: dict = field(default_factory=dict)
    last_logs: dict = field(default_factory=dict)
    forget_nll_history: list = field(default_factory=list)


LossFn = Callable[..., tuple[torch.Tensor, int, dict]]


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def to_device(batch: dict, dev: torch.device) -> dict:
    return {k: v.to(dev) for k, v in batch.items()}


@torch.no_grad()
def nll_of_encoded(model, enc: Sequence[EncodedExample], pad_id: int, batch_size: int = 32) -> float:
    """Mean NLL per supervised token of already encoded records (nats), eval mode."""
    was = model.training
    model.eval()
    dev = model_device(model)
    tot, n = 0.0, 0
    for i in range(0, len(enc), batch_size):
        logp, mask = token_logprobs_of_labels(model, to_device(collate(enc[i:i + batch_size], pad_id), dev))
        tot += -logp.sum().item()
        n += int(mask.sum().item())
    model.train(was)
    return tot / max(n, 1)


def _autocast(dev: torch.device, mode: str):
    if dev.type == "cuda" and mode in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def latest_checkpoint(checkpoint_dir: str | Path | None) -> Path | None:
    """The ``epoch-N`` directory with the largest N under ``checkpoint_dir`` (None if none)."""
    if checkpoint_dir is None or not Path(checkpoint_dir).is_dir():
        return None
    best, best_n = None, -1
    for p in Path(checkpoint_dir).glob("epoch-*"):
        try:
            n = int(p.name.split("-", 1)[1])
        except ValueError:
            continue
        if n > best_n and (p / CHECKPOINT_FILE).is_file():
            best, best_n = p, n
    return best


def _save_checkpoint(cfg: LoopConfig, state: dict) -> None:
    root = Path(cfg.checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch-{state['epoch']}"
    tmp = root / f".tmp-epoch-{state['epoch']}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(state, tmp / CHECKPOINT_FILE)
    (tmp / "meta.json").write_text(json.dumps(
        {"epoch": state["epoch"], "step": state["step"], "phase": cfg.phase,
         "fingerprint": state["fingerprint"]}, sort_keys=True, default=str))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for p in root.glob("epoch-*"):  # keep the last one only
        if p != final:
            shutil.rmtree(p, ignore_errors=True)


def run_loop(model, pad_id: int, drive: Sequence[EncodedExample], other: Sequence[EncodedExample] | None,
             loss_fn: LossFn, cfg: LoopConfig, *, seed: int = 0,
             progress: Callable[[Progress], None] | None = None,
             params: list[torch.nn.Parameter] | None = None,
             on_epoch_start: Callable[[LoopState], None] | None = None,
             after_step: Callable[[LoopState], None] | None = None,
             forget_for_stop: Sequence[EncodedExample] | None = None,
             collate_fn: Callable | None = None) -> LoopStats:
    """Train ``model`` in place on ``loss_fn`` (see module docstring); leaves it in eval mode.

    ``params``: the parameters to optimise (default: those with ``requires_grad``; with LoRA the
    adapter weights). A checkpoint holds those parameters (by name), the optimizer, scheduler and
    RNG states; ``cfg.resume`` restarts after the last checkpoint whose ``fingerprint`` matches
    (a finished run is not trained again). ``forget_for_stop``: the forget records whose mean NLL
    is measured after each epoch when ``cfg.stop_forget_nll`` is set; training stops once it is
    ≥ the target. ``collate_fn(items, pad_id) -> dict of tensors`` builds a batch (default: the
    causal-LM :func:`~unlearning_engine.training.collate`; other model families pass their own, e.g.
    stacked feature/label tensors, and ``pad_id`` is then ignored).
    """
    collate_fn = collate_fn or collate
    if not drive:
        raise ValueError("run_loop: nothing to train on")
    if cfg.pair and not other:
        raise ValueError("run_loop: pair=True needs a non-empty second set")
    g = seed_everything(seed)
    dev = model_device(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if params is None:
        params = [p for _, p in named]
    pid = {id(p) for p in params}
    named = [(n, p) for n, p in named if id(p) in pid]
    bs = cfg.batch_size
    steps_per_epoch = math.ceil(len(drive) / bs)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, int(cfg.max_steps))
    opt, sched = make_optimizer_and_schedule(params, lr=cfg.lr, total_steps=total,
                                             warmup_ratio=cfg.warmup_ratio,
                                             weight_decay=cfg.weight_decay)
    fingerprint = json.loads(json.dumps(cfg.fingerprint or {}, sort_keys=True, default=str))
    stats = LoopStats(steps=0, tokens=0, wall_seconds=0.0, final_loss=float("nan"), epochs_run=0)
    start_epoch = 0
    if cfg.resume and (ck := latest_checkpoint(cfg.checkpoint_dir)) is not None:
        st = torch.load(ck / CHECKPOINT_FILE, map_location=dev, weights_only=False)
        if st.get("fingerprint") == fingerprint and st.get("total") == total:
            with torch.no_grad():
                for n, p in named:
                    p.copy_(st["params"][n])
            opt.load_state_dict(st["opt"])
            sched.load_state_dict(st["sched"])
            g.set_state(st["g"])
            torch.set_rng_state(st["torch_rng"])
            start_epoch = st["epoch"]
            stats.steps, stats.tokens = st["step"], st["tokens"]
            stats.first_logs, stats.last_logs = st["first_logs"], st["last_logs"]
            stats.final_loss, stats.forget_nll_history = st["final_loss"], st["forget_nll_history"]
            stats.stopped_early = st.get("stopped_early", False)
            stats.resumed_from_epoch = start_epoch
            stats.epochs_run = start_epoch
    rep = ProgressReporter(total, cfg.phase, progress)
    t0 = time.perf_counter()
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        if stats.stopped_early:
            break
        state = LoopState(epoch=epoch, step=stats.steps, total=total)
        if on_epoch_start is not None:
            on_epoch_start(state)
        ep_loss, ep_tok = 0.0, 0
        for idx in batches_for_epoch(len(drive), bs, g):
            if stats.steps >= total:
                break  # step budget (cfg.max_steps) reached inside this epoch
            db = to_device(collate_fn([drive[i] for i in idx], pad_id), dev)
            ob = None
            if cfg.pair:
                oidx = torch.randint(len(other), (bs,), generator=g).tolist()
                ob = to_device(collate_fn([other[i] for i in oidx], pad_id), dev)
            with _autocast(dev, cfg.mixed_precision):
                loss, n_tok, logs = loss_fn(model, db, ob, state)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            stats.steps += 1
            state.step = stats.steps
            if after_step is not None:
                after_step(state)
            lval = float(loss.item())
            logs = {"loss": lval, **{k: float(v) for k, v in logs.items()}}
            if not stats.first_logs:
                stats.first_logs = logs
            stats.last_logs = logs
            stats.tokens += int(n_tok)
            ep_loss += lval * n_tok
            ep_tok += n_tok
            rep(stats.steps, lval, int(n_tok))
        stats.final_loss = ep_loss / max(ep_tok, 1)
        stats.epochs_run = epoch + 1
        if cfg.stop_forget_nll is not None and forget_for_stop:
            f_nll = nll_of_encoded(model, forget_for_stop, pad_id)
            stats.forget_nll_history.append(f_nll)
            if f_nll >= cfg.stop_forget_nll:
                stats.stopped_early = True
        if cfg.checkpoint_dir is not None:
            _save_checkpoint(cfg, {
                "epoch": epoch + 1, "step": stats.steps, "tokens": stats.tokens, "total": total,
                "params": {n: p.detach().clone() for n, p in named},
                "opt": opt.state_dict(), "sched": sched.state_dict(), "g": g.get_state(),
                "torch_rng": torch.get_rng_state(), "fingerprint": fingerprint,
                "first_logs": stats.first_logs, "last_logs": stats.last_logs,
                "final_loss": stats.final_loss, "forget_nll_history": stats.forget_nll_history,
                "stopped_early": stats.stopped_early})
    model.eval()
    stats.wall_seconds = time.perf_counter() - t0
    return stats
