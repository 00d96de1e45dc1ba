"""DP-SGD fine-tuning of the DP base model (DP2Unlearning step 1, DESIGN §6; issue 12).

Mechanism: unit-level DP-SGD (:mod:`unlearning_engine.dp_user`): Poisson sampling of privacy
units (a data subject, or a record) with rate q, each unit's gradient = mean of the per-example
gradients of at most ``max_records_per_unit`` of its records, clipped to L2 norm C =
``max_grad_norm``, Gaussian noise N(0, σ²C²) on the sum, normalised by q·N_units (Abadi et al.
2016, arXiv 1607.00133, Alg. 1; user-level sampling of Chua et al., arXiv 2406.14322 §3). σ is
calibrated to the target (ε, δ) over the planned steps with opacus' accountants
(:mod:`unlearning_engine.dp_accounting`), and the achieved ε is recomputed from the real number
of steps and must be ≤ the target. The :class:`PrivacyLedger` holds every figure an auditor
needs to recompute ε.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .data import Example
from .errors import UnlearningInputError

#: Fewer privacy units than this cannot support a meaningful DP claim (δ < 1/N gets large,
#: Poisson batches get tiny); train_dp_base refuses.
MIN_DP_UNITS = 20
MIN_DP_RECORDS = MIN_DP_UNITS  # former name (record-level only)
#: Largest physical batch per forward/backward (per-sample gradients cost B× memory).
MAX_PHYSICAL_BATCH = 32
#: Default bound on the records of one unit used per step (a TOFU author has 20).
DEFAULT_MAX_RECORDS_PER_UNIT = 20
TOKENIZER_KINDS_OK = ("pretrained", "public_corpus")
TOKENIZER_KINDS = TOKENIZER_KINDS_OK + ("private_corpus", "unknown")
HPARAM_LIMITATION = ("The DP hyper-parameters (learning rate, epochs, sample rate, clipping norm) "
                     "were chosen on the private corpus; that choice is not covered by the "
                     "(epsilon, delta) accounting.")


@dataclass
class PrivacyLedger:
    """What the certificate states about the DP base (DESIGN §6.4), recomputable by an auditor.

    ``epsilon`` is the achieved ε of ``accountant`` after ``steps`` noisy steps, each unit of the
    ``n_units`` sampled independently with probability ``sample_rate`` (q), noise multiplier σ
    (``noise_multiplier``; noise std = σ·``max_grad_norm``) and failure probability ``delta``
    (< 1/n_units). ``privacy_unit`` is ``"subject"`` (one data subject; records without a
    subject count as their own unit, ``records_without_subject``) or ``"record"``. Per step at
    most ``max_records_per_unit`` records of a unit are used and their gradients are averaged
    (``unit_aggregation="mean"``) before clipping. ``rdp_alphas``/``rdp_optimal_order`` give the
    RDP orders searched and the minimiser; ``epsilons`` the ε of each accountant computed.
    ``tokenizer_provenance`` is ``{"kind", "name", "sha256"}`` (kind ``"unrecorded"`` when the
    caller did not say). ``weights_sha256`` identifies the saved DP base artifact.
    """

    target_epsilon: float
    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    epochs: int
    accountant: str
    max_grad_norm: float
    n_records: int
    weights_sha256: str
    wall_seconds: float = 0.0
    tokens: int = 0
    privacy_unit: str = "record"
    #: LoRA config when only an adapter was trained with DP-SGD (merged into the artifact)
    lora: dict | None = None
    n_units: int = 0
    max_records_per_unit: int = 1
    unit_aggregation: str = "mean"
    unit_gradient: str = "aggregate"
    expected_units_per_step: float = 0.0
    records_without_subject: int = 0
    units_subsampled: int = 0
    largest_unit_records: int = 1
    epsilons: dict = field(default_factory=dict)
    rdp_alphas: list = field(default_factory=list)
    rdp_optimal_order: float | None = None
    noise_source: str = ""
    tokenizer_provenance: dict = field(default_factory=lambda: {"kind": "unrecorded"})
    limitations: list = field(default_factory=list)
    mechanism: str = ("unit-level DP-SGD (Poisson sampling of units, mean of per-example "
                      "gradients per unit, clip to C, Gaussian noise sigma*C)")
    source: str = ("Abadi et al. 2016 (arXiv 1607.00133) Alg. 1; user-level sampling, Chua et al. "
                   "2024 (arXiv 2406.14322) §3; accountants: opacus RDP (Mironov 2017) / PRV "
                   "(Gopi et al. 2021, arXiv 2106.02848)")

    def to_dict(self) -> dict:
        return asdict(self)


def group_privacy(epsilon: float, delta: float, k: int) -> tuple[float, float]:
    """Group-privacy guarantee for a subject with ``k`` records: (k·ε, k·e^{(k−1)ε}·δ).

    Source: group privacy of (ε, δ)-DP (Vadhan, "The Complexity of Differential Privacy", 2017,
    Lemma 2.2; Dwork & Roth 2014 Thm 2.2 for δ=0), as used by DP2Unlearning (arXiv 2504.13774)
    and DESIGN §6.4. Returns floats (δ may exceed 1, i.e. be vacuous, for large k·ε).

    Raises:
        ValueError: k < 1, ε < 0 or δ outside [0, 1].
    """
    if int(k) != k or k < 1:
        raise ValueError("k must be an integer >= 1")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError("need epsilon >= 0 and 0 <= delta <= 1")
    k = int(k)
    try:
        return k * epsilon, k * math.exp((k - 1) * epsilon) * delta
    except OverflowError:
        return k * epsilon, math.inf


def resolve_delta(n_units: int, delta: float | None, unit: str = "records") -> float:
    """δ default 1/(10·N) over the N privacy units; raises UnlearningInputError unless 0 < δ < 1/N."""
    if delta is None:
        delta = 1.0 / (10 * n_units)
    if not (0 < delta < 1.0 / n_units):
        raise UnlearningInputError(
            f"delta={delta:g} must satisfy 0 < delta < 1/N = {1.0 / n_units:g} (N={n_units} {unit})")
    return float(delta)




def check_tokenizer_provenance(prov: dict | None) -> dict:
    """The ledger's ``tokenizer_provenance``; ``None`` → ``{"kind": "unrecorded"}``.

    Raises:
        UnlearningInputError: a dict without a known ``kind``, or whose kind is not
            ``"pretrained"``/``"public_corpus"`` (a tokenizer trained on the private corpus puts
            private data outside the DP mechanism: its vocabulary depends on every record).
    """
    if prov is None:
        return {"kind": "unrecorded", "name": "", "sha256": ""}
    if not isinstance(prov, dict) or prov.get("kind") not in TOKENIZER_KINDS:
        raise UnlearningInputError(
            f"tokenizer_provenance must be a dict with kind in {', '.join(TOKENIZER_KINDS)}")
    if prov["kind"] not in TOKENIZER_KINDS_OK:
        raise UnlearningInputError(
            f"DP training refused: the tokenizer's provenance is {prov['kind']!r}; it must be "
            "'pretrained' or 'public_corpus' (a tokenizer trained on private data leaks it "
            "outside the DP mechanism)")
    return {"kind": prov["kind"], "name": str(prov.get("name", "")),
            "sha256": str(prov.get("sha256", ""))}


def _resolve_rate(n_units: int, batch_size: int | None, sample_rate: float | None):
    """(q, steps per epoch) from an expected units-per-step ``batch_size`` or a ``sample_rate``."""
    if (batch_size is None) == (sample_rate is None):
        raise UnlearningInputError("give exactly one of batch_size (expected units per step) "
                                   "or sample_rate")
    if batch_size is not None:
        if int(batch_size) != batch_size or not 1 <= batch_size < n_units:
            raise UnlearningInputError(
                f"batch_size (expected units per step) must be in [1, N) (N={n_units} units)")
        return batch_size / n_units, math.ceil(n_units / batch_size)
    if not 1.0 / n_units <= sample_rate < 1:
        raise UnlearningInputError(f"sample_rate must be in [1/N, 1) (N={n_units} units)")
    return float(sample_rate), math.ceil(1.0 / sample_rate - 1e-9)


def _validate(examples, *, target_epsilon, epochs, lr, max_grad_norm, mixed_precision,
              privacy_unit, max_records_per_unit, unit_gradient, min_units):
    from .dp_user import PRIVACY_UNITS, UNIT_GRADIENTS, group_units

    if mixed_precision not in (None, "no", "fp32"):
        raise UnlearningInputError(
            f"DP training with mixed precision ({mixed_precision!r}) is not supported: per-sample "
            "gradients, clipping and noise must be computed in fp32")
    if privacy_unit not in PRIVACY_UNITS:
        raise UnlearningInputError(f"privacy_unit must be one of {', '.join(PRIVACY_UNITS)}")
    if unit_gradient not in UNIT_GRADIENTS:
        raise UnlearningInputError(f"unit_gradient must be one of {', '.join(UNIT_GRADIENTS)}")
    if int(max_records_per_unit) != max_records_per_unit or max_records_per_unit < 1:
        raise UnlearningInputError("max_records_per_unit must be an integer >= 1")
    units = group_units(examples, privacy_unit)
    if len(units) < min_units:
        raise UnlearningInputError(
            f"DP training needs at least {min_units} privacy units ({privacy_unit}s), got "
            f"{len(units)} from {len(examples)} records")
    if not target_epsilon > 0:
        raise UnlearningInputError("target_epsilon must be > 0")
    if epochs < 1 or not lr > 0 or not max_grad_norm > 0:
        raise UnlearningInputError("epochs >= 1, lr > 0 and max_grad_norm > 0 required")
    return units


def train_dp_base(base_dir: str | Path, examples: list[Example], out_dir: str | Path, *,
                  target_epsilon: float, delta: float | None = None, max_grad_norm: float = 1.0,
                  epochs: int, lr: float, batch_size: int | None = None,
                  sample_rate: float | None = None, seed: int = 0,
                  progress: Callable | None = None, accountant: str = "auto",
                  privacy_unit: str = "subject",
                  max_records_per_unit: int = DEFAULT_MAX_RECORDS_PER_UNIT,
                  unit_gradient: str = "aggregate", min_units: int = MIN_DP_UNITS,
                  max_physical_batch_size: int = MAX_PHYSICAL_BATCH,
                  secure_mode: bool = False, mixed_precision: str | None = None,
                  lora: dict | None = None, device: str | None = None,
                  tokenizer_provenance: dict | None = None) -> PrivacyLedger:
    """Fine-tune the base artifact at ``base_dir`` on ``examples`` with unit-level DP-SGD.

    Mechanism in :mod:`unlearning_engine.dp_user` (module docstring); AdamW with linear
    warm-up/decay on the privatised gradients (post-processing). ``epochs`` × ⌈1/q⌉ steps, each a
    noisy step even when the Poisson sample is empty. The GradSampleModule is unwrapped (hooks
    removed) before saving, so the artifact loads strictly into a plain ``LlamaForCausalLM``.
    All DP randomness (sampling, record subsets, noise) comes from an ``os.urandom``-seeded
    generator (never stored): two runs of the same recipe differ; ``seed`` drives the rest
    (LoRA init, dropout).

    Args:
        privacy_unit: ``"subject"`` (records with the same ``Example.subject`` form one unit; a
            record without subject is its own unit) or ``"record"`` (each record).
        batch_size: expected number of *units* per step, q = batch_size / N_units; or give
            ``sample_rate`` = q directly (exactly one of the two).
        max_records_per_unit: per step a sampled unit contributes the mean gradient of at most
            this many of its records (uniform random subset when it has more).
        unit_gradient: ``"aggregate"`` (per-example gradients averaged per unit) or ``"pack"``
            (a unit's records concatenated into one sequence).
        target_epsilon: ε target (> 0). delta: δ, default 1/(10·N_units), must be < 1/N_units.
        accountant: ``"auto"`` (PRV when it needs less noise than RDP), ``"rdp"`` or ``"prv"``.
        max_physical_batch_size: rows per forward/backward; a unit is never split, so a unit with
            more records is a physical batch of its own (≤ max_records_per_unit rows); does not
            change the accounting.
        secure_mode: noise from torchcsprng (must be installed; it is not installable for this
            torch), else an os.urandom-seeded torch generator.
        mixed_precision: ``None``, ``"no"`` or ``"fp32"`` only (fp32 per-sample math).
        lora: ``None`` (full-parameter) or a LoRA config (:func:`unlearning_engine.hparams.v_lora`):
            only the adapter is trained/clipped/noised; merged into the saved artifact.
        tokenizer_provenance: ``{"kind": "pretrained"|"public_corpus"|"private_corpus"|"unknown",
            "name", "sha256"}``; ``None`` is recorded as ``"unrecorded"`` (the certificate then
            claims no DP).
    Returns:
        :class:`PrivacyLedger` with the achieved ε.
    Raises:
        UnlearningInputError (before any training): fewer than ``min_units`` units, δ ≥ 1/N_units,
            ε ≤ 0, bad batch_size/sample_rate, max_records_per_unit < 1, unknown accountant /
            privacy_unit / unit_gradient, mixed precision, non-fp32 weights, a tokenizer whose
            provenance is private/unknown, a packed unit longer than the model's positions.
        PrivacyBudgetError: achieved ε > target (the artifact is not saved).
    """
    from .dp_accounting import calibrate

    prov = check_tokenizer_provenance(tokenizer_provenance)
    units = _validate(examples, target_epsilon=target_epsilon, epochs=epochs, lr=lr,
                      max_grad_norm=max_grad_norm, mixed_precision=mixed_precision,
                      privacy_unit=privacy_unit, max_records_per_unit=max_records_per_unit,
                      unit_gradient=unit_gradient, min_units=min_units)
    n_units = len(units)
    delta = resolve_delta(n_units, delta, f"{privacy_unit}s")
    q, steps_per_epoch = _resolve_rate(n_units, batch_size, sample_rate)
    if lora is not None:
        from .hparams import v_lora
        lora = v_lora("lora", lora)
    acc = calibrate(target_epsilon, delta, q, epochs * steps_per_epoch, accountant)
    ledger = PrivacyLedger(
        target_epsilon=float(target_epsilon), epsilon=acc.epsilon, delta=delta,
        noise_multiplier=acc.noise_multiplier, sample_rate=q, steps=0, epochs=epochs,
        accountant=acc.accountant, max_grad_norm=float(max_grad_norm), n_records=len(examples),
        weights_sha256="", privacy_unit=privacy_unit, lora=lora, n_units=n_units,
        max_records_per_unit=int(max_records_per_unit) if privacy_unit == "subject" else 1,
        unit_gradient=unit_gradient,
        expected_units_per_step=q * n_units,
        records_without_subject=(sum(1 for e in examples if e.subject is None)
                                 if privacy_unit == "subject" else len(examples)),
        units_subsampled=sum(1 for u in units if len(u) > max_records_per_unit),
        largest_unit_records=max(len(u) for u in units), epsilons=acc.epsilons,
        rdp_alphas=acc.rdp_alphas, rdp_optimal_order=acc.rdp_optimal_order,
        tokenizer_provenance=prov, limitations=[HPARAM_LIMITATION])
    from .dp_train import run_dp_training
    return run_dp_training(base_dir, examples, out_dir, units, ledger, lr=lr, seed=seed,
                           steps_per_epoch=steps_per_epoch, progress=progress,
                           max_physical_batch_size=max_physical_batch_size,
                           secure_mode=secure_mode, device=device)
