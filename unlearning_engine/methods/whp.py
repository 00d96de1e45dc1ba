"""``whp``: "Who's Harry Potter?" approximate unlearning (DESIGN §5).

Source: Eldan & Russinovich, "Who's Harry Potter? Approximate Unlearning in LLMs",
arXiv 2310.02238, §3 (reinforced model, eq. (1) generic predictions, anchored terms,
fine-tuning on generic labels):

1. Reinforced model θ_r = θ_o fine-tuned on D_f (minimise NLL(D_f); ``reinforce_epochs``,
   ``reinforce_lr``).
2. Generic logits on each forget text:  v = v_o − α·ReLU(v_r − v_o)   (α = ``alpha``),
   v_r = θ_r's logits on the original text, v_o = θ_o's logits on the text after the optional
   anchored-term substitution ``anchors`` ({term: generic}, applied to the forget texts, longest
   term first). Token positions of the substituted text are aligned with the original by
   ``difflib`` on the token ids; positions inside a substituted span use θ_o's logits on the
   original text.
3. Generic labels = argmax(v) at every supervised position (the final EOS label is kept);
   θ_u = θ_o fine-tuned on (original forget inputs, generic labels) (``epochs``, ``lr``).
With LoRA, θ_r is θ_o + a reinforcement adapter (v_o from the adapter-disabled base); that adapter
is then removed and a fresh one is trained in step 3 (saved to ``adapter/``).
"""
from __future__ import annotations

import difflib
import re

import torch

from ..data import Example
from ..hparams import v_anchors
from ..loop import model_device
from ..lora import reference_of, unload
from ..presets import PRESET_HP
from ..training import IGNORE_INDEX, EncodedExample, encode_example
from .common import COMMON_VALIDATORS, TrainedMethod, nll_term, with_common


def generic_logits(v_o: torch.Tensor, v_r: torch.Tensor, alpha: float) -> torch.Tensor:
    """WHP eq. (1): v_generic = v_o − α·ReLU(v_r − v_o) (elementwise, any shape)."""
    return v_o - alpha * torch.relu(v_r - v_o)


def substitute_anchors(text: str, anchors: dict[str, str] | None) -> str:
    """Replace every anchored term by its generic translation (longest terms first, one pass)."""
    if not anchors:
        return text
    terms = sorted(anchors, key=len, reverse=True)
    pat = re.compile("|".join(re.escape(t) for t in terms))
    return pat.sub(lambda m: anchors[m.group(0)], text)


def substitute_example(ex: Example, anchors: dict[str, str] | None) -> Example:
    if ex.is_qa:
        return Example(question=substitute_anchors(ex.question, anchors),
                       answer=substitute_anchors(ex.answer, anchors), record_id=ex.record_id)
    return Example(text=substitute_anchors(ex.text, anchors), record_id=ex.record_id)


def align_positions(orig: list[int], trans: list[int]) -> dict[int, int]:
    """{position in ``orig``: position in ``trans``} for tokens in equal blocks (difflib)."""
    sm = difflib.SequenceMatcher(a=orig, b=trans, autojunk=False)
    out = {}
    for tag, i1, i2, j1, _j2 in sm.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                out[i1 + k] = j1 + k
    return out


def _logits(model, ids: tuple[int, ...]) -> torch.Tensor:
    x = torch.tensor([ids], device=model_device(model))
    return model(input_ids=x, use_cache=False).logits[0].float()


@torch.no_grad()
def generic_labels(logits_r, logits_o, enc: EncodedExample, enc_sub: EncodedExample | None,
                   alpha: float, eos_id: int) -> EncodedExample:
    """The record ``enc`` with its supervised labels (except the final EOS) replaced by the argmax
    of the generic logits; ``logits_r``/``logits_o`` map a token-id tuple to (L, V) logits of the
    reinforced / original model."""
    v_r = logits_r(enc.input_ids)
    v_o = logits_o(enc.input_ids)
    if enc_sub is not None and enc_sub.input_ids != enc.input_ids:
        v_t = logits_o(enc_sub.input_ids)
        for i, j in align_positions(list(enc.input_ids), list(enc_sub.input_ids)).items():
            v_o[i] = v_t[j]
    top = generic_logits(v_o, v_r, alpha).argmax(-1).tolist()
    labels = list(enc.labels)
    for t in range(1, len(labels)):
        if labels[t] != IGNORE_INDEX and labels[t] != eos_id:
            labels[t] = top[t - 1]
    return EncodedExample(enc.input_ids, tuple(labels))


class WHP(TrainedMethod):
    name = "whp"
    description = "Who's Harry Potter: fine-tune on generic labels from a reinforced model"
    defaults = {**with_common(PRESET_HP["tiny"]["whp"]), "anchors": None}
    int_params = frozenset({"epochs", "batch_size", "reinforce_epochs"})
    nonneg_params = frozenset({"alpha"})
    validators = {**COMMON_VALIDATORS, "anchors": v_anchors}
    needs_retain = False

    def _nll(self, ctx, model, fb, _rb, _state):
        loss, n = nll_term(model, fb)
        return loss, n, {"nll": loss.item()}

    def train(self, ctx, model, f_enc, r_enc):
        hp = ctx.hp
        anchors = hp.get("anchors")
        f_sub = ([encode_example(ctx.tok, substitute_example(ex, anchors), ctx.max_len)
                  for ex in ctx.req.forget] if anchors else [None] * len(f_enc))
        lora = bool(hp.get("lora"))
        # 1. reinforced model θ_r
        if lora:
            reinforced = ctx.maybe_lora(model)
        else:
            reinforced = ctx.frozen_copy(model)
            for p in reinforced.parameters():
                p.requires_grad_(True)
        ctx.loop(reinforced, f_enc, None, lambda m, db, ob, st: self._nll(ctx, m, db, ob, st),
                 phase="reinforce", main=False, epochs=hp["reinforce_epochs"],
                 lr=hp["reinforce_lr"], batch_size=hp["batch_size"], pair=False)
        reinforced.eval()
        model.eval()

        def logits_r(ids):
            return _logits(reinforced, ids)

        def logits_o(ids):
            with reference_of(reinforced, None if lora else model) as base:
                return _logits(base, ids)

        # 2. generic labels
        gen = [generic_labels(logits_r, logits_o, e, s, hp["alpha"], ctx.tok.eos_token_id)
               for e, s in zip(f_enc, f_sub, strict=True)]
        pairs = [(a, b) for e, g in zip(f_enc, gen, strict=True)
                 for a, b in zip(e.labels[1:], g.labels[1:], strict=True)
                 if a != IGNORE_INDEX]
        self._changed = (sum(a != b for a, b in pairs), len(pairs))
        # 3. θ_o fine-tuned on the generic labels
        if lora:
            model = ctx.maybe_lora(unload(reinforced))
        reinforced = None  # noqa: F841 — free θ_r before the last phase
        ctx.loop(model, gen, None, lambda m, db, ob, st: self._nll(ctx, m, db, ob, st),
                 phase=self.name, epochs=hp["epochs"], lr=hp["lr"], batch_size=hp["batch_size"],
                 pair=False, stop_on=f_enc)
        return ctx.finish(model)

    def extra_details(self, ctx):
        n_changed, n_sup = self._changed
        return {"generic_labels_changed": n_changed, "generic_labels_total": n_sup,
                "anchors": len(ctx.hp.get("anchors") or {}),
                "reinforce_final_nll": ctx.stats["reinforce"].final_loss}
