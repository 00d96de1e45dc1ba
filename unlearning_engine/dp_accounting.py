"""Privacy accounting of (unit-level) DP-SGD with opacus' accountants, recomputable by an auditor.

The mechanism accounted for is the Poisson-subsampled Gaussian mechanism composed ``steps``
times: sample rate q (each privacy unit independently with probability q), noise multiplier σ
(noise std σ·C on the sum of unit gradients clipped to norm C). Two accountants of opacus:

- ``"rdp"``: Rényi DP of the subsampled Gaussian (Mironov, "Rényi Differential Privacy", 2017;
  Mironov, Talwar & Zhang, arXiv 1908.10530) converted to (ε, δ) with Balle et al. 2020
  (arXiv 1905.09982, Thm 21), minimised over the orders :data:`RDP_ALPHAS`. The order range is
  wide enough (1.05 … 1024) that the optimum is interior for ε between about 0.1 and 60, so
  opacus' warning "Optimal order is the largest alpha" does not fire (checked and recorded:
  ``rdp_optimal_order``).
- ``"prv"``: privacy random variables (Gopi, Lee & Wutschitz, arXiv 2106.02848), opacus'
  ``PRVAccountant.get_epsilon`` returns the *upper* end of its ε estimate (error ``eps_error``).

``"auto"`` computes σ for both and keeps the accountant needing less noise (PRV is usually
tighter); the other accountant's ε at the chosen σ is recorded too.

An auditor recomputes ε with, e.g.::

    from opacus.accountants import RDPAccountant
    acc = RDPAccountant(); acc.history = [(sigma, q, steps)]
    acc.get_epsilon(delta=delta, alphas=ledger["rdp_alphas"])
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

from .errors import PrivacyBudgetError, UnlearningInputError

#: RDP orders: fine near 1 (large ε), integers 2…63, then a geometric tail up to 1024 (small ε).
#: Integer orders are cheap in opacus (exact binomial sum); fractional ones are the slow part,
#: so only 15 of them are used.
RDP_ALPHAS: tuple[float, ...] = tuple(
    [1.05, 1.1, 1.15, 1.2, 1.3, 1.4, 1.5, 1.6, 1.75, 1.9, 2.25, 2.5, 2.75, 3.5, 4.5]
    + [float(a) for a in range(2, 64)]
    + [72.0, 80.0, 96.0, 112.0, 128.0, 160.0, 192.0, 256.0, 384.0, 512.0, 768.0, 1024.0])
RDP_ALPHAS = tuple(sorted(set(RDP_ALPHAS)))
#: PRV accountant error on ε (opacus default 0.01).
PRV_EPS_ERROR = 0.01
ACCOUNTANTS = ("auto", "rdp", "prv")


@dataclass
class Accounting:
    """σ and the achieved ε of ``steps`` compositions at sample rate q and failure δ."""

    accountant: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    target_epsilon: float
    epsilon: float
    #: ε of every accountant that was computed at the chosen σ (e.g. {"rdp": 7.4, "prv": 7.99})
    epsilons: dict = field(default_factory=dict)
    rdp_alphas: list = field(default_factory=lambda: list(RDP_ALPHAS))
    #: the RDP order attaining the minimum (interior of ``rdp_alphas``); None when not computed
    rdp_optimal_order: float | None = None


def rdp_epsilon(sigma: float, q: float, steps: int, delta: float,
                alphas=RDP_ALPHAS) -> tuple[float, float]:
    """(ε, optimal order) of the RDP accountant (opacus ``analysis.rdp``), without warnings."""
    from opacus.accountants.analysis import rdp as ana

    _memoise_opacus_rdp()
    rdp = ana.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=list(alphas))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps, order = ana.get_privacy_spent(orders=list(alphas), rdp=rdp, delta=delta)
    return float(eps), float(order)


def prv_epsilon(sigma: float, q: float, steps: int, delta: float,
                eps_error: float = PRV_EPS_ERROR) -> float:
    """Upper bound on ε of opacus' ``PRVAccountant`` for ``steps`` compositions."""
    from opacus.accountants import PRVAccountant

    _memoise_opacus_rdp()
    acc = PRVAccountant()
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():  # PRV sizes its domain with an internal RDP bound (default
        warnings.simplefilter("ignore")  # alphas) that may warn; it does not set the ε reported
        return float(acc.get_epsilon(delta=delta, eps_error=eps_error))


def _memoise_opacus_rdp() -> None:
    """Memoise opacus' pure per-order RDP function ``_compute_rdp(q, σ, α)`` (identical values;
    PRV's domain sizing and the σ search evaluate the same (q, σ, α) many times)."""
    from opacus.accountants.analysis import rdp as ana

    if not hasattr(ana._compute_rdp, "cache_info"):
        ana._compute_rdp = functools.lru_cache(maxsize=65536)(ana._compute_rdp)


def solve_sigma(eps_of, target_epsilon: float, guess: float = 1.0, rel_tol: float = 0.01,
                max_iter: int = 60) -> float:
    """Smallest σ (up to ``rel_tol`` in ε) with ``eps_of(σ) ≤ target_epsilon``.

    ε(σ) is decreasing; the root of log ε(σ) − log ε* is bracketed by doubling/halving from
    ``guess`` and refined by the Illinois variant of regula falsi in log σ (bisection while an
    end is infinite). The returned σ always satisfies ε(σ) ≤ target and ε(σ) ≥ (1−rel_tol)·target
    unless ``max_iter`` ran out (then it is merely ≤ target).

    Raises:
        PrivacyBudgetError: no σ ≤ 1e6 reaches the target.
    """
    def f(sig: float) -> float:
        e = eps_of(sig)
        if not math.isfinite(e):
            return math.inf
        return math.log(max(e, 1e-300)) - math.log(target_epsilon)

    a = b = float(guess)
    fa = fb = f(a)
    if fb > 0:
        while fb > 0:
            a, fa = b, fb
            b *= 2.0
            if b > 1e6:
                raise PrivacyBudgetError("the privacy budget is too small (sigma > 1e6)")
            fb = f(b)
    else:
        while fa <= 0 and a > 1e-3:
            b, fb = a, fa
            a /= 2.0
            fa = f(a)
        if fa <= 0:
            return a
    side = 0
    for _ in range(max_iter):
        if fb >= math.log1p(-rel_tol):
            break
        la, lb = math.log(a), math.log(b)
        lc = (la + lb) / 2 if not math.isfinite(fa) else (la * fb - lb * fa) / (fb - fa)
        c = math.exp(lc)
        fc = f(c)
        if fc > 0:
            a, fa = c, fc
            if side == -1:
                fb /= 2
            side = -1
        else:
            b, fb = c, fc
            if side == 1 and math.isfinite(fa):
                fa /= 2
            side = 1
    return b


def _rdp_sigma(target_epsilon: float, delta: float, q: float, steps: int) -> float:
    return solve_sigma(lambda sg: rdp_epsilon(sg, q, steps, delta)[0], target_epsilon)


def _prv_sigma(target_epsilon: float, delta: float, q: float, steps: int,
               sigma_rdp: float) -> float | None:
    """Smallest σ with PRV ε ≤ target (searched from the RDP σ); None if PRV fails here."""
    try:
        return solve_sigma(lambda sg: prv_epsilon(sg, q, steps, delta), target_epsilon,
                           guess=0.9 * sigma_rdp)
    except (ValueError, RuntimeError, OverflowError, MemoryError, PrivacyBudgetError):
        return None


def calibrate(target_epsilon: float, delta: float, q: float, steps: int,
              accountant: str = "auto") -> Accounting:
    """Noise multiplier σ for (``target_epsilon``, ``delta``) after ``steps`` steps at rate ``q``.

    σ is solved with :func:`solve_sigma` (ε within 1 % below the target) on opacus' RDP and PRV
    ε (faster than ``opacus.accountants.utils.get_noise_multiplier``'s bisection on [0, 20]). ``"auto"`` and ``"prv"`` keep the smaller σ of the two (a request
    for PRV where PRV is not tighter falls back to RDP, and the ledger names RDP).

    Raises:
        UnlearningInputError: unknown accountant, q ∉ (0, 1], steps < 1.
    """
    if accountant not in ACCOUNTANTS:
        raise UnlearningInputError(f"accountant must be one of {', '.join(ACCOUNTANTS)}")
    if not 0 < q <= 1 or steps < 1:
        raise UnlearningInputError("need 0 < sample rate <= 1 and at least one step")
    sigma_rdp = _rdp_sigma(target_epsilon, delta, q, steps)
    sigma, chosen = sigma_rdp, "rdp"
    if accountant in ("auto", "prv"):
        sigma_prv = _prv_sigma(target_epsilon, delta, q, steps, sigma_rdp)
        # PRV not tighter (or failing) here: RDP is used and recorded as the accountant
        if sigma_prv is not None and sigma_prv < sigma_rdp:
            sigma, chosen = sigma_prv, "prv"
    return account(sigma, q, steps, delta, target_epsilon, chosen)


def account(sigma: float, q: float, steps: int, delta: float, target_epsilon: float,
            accountant: str) -> Accounting:
    """Achieved ε of ``accountant`` at σ (plus the RDP ε and its optimal order, always).

    Raises:
        PrivacyBudgetError: the chosen accountant's ε exceeds ``target_epsilon`` (+1e-9), or the
            RDP optimum sits at the edge of :data:`RDP_ALPHAS` while RDP is the accountant.
    """
    eps_rdp, order = rdp_epsilon(sigma, q, steps, delta)
    epsilons = {"rdp": eps_rdp}
    if accountant == "prv":
        epsilons["prv"] = prv_epsilon(sigma, q, steps, delta)
    eps = epsilons[accountant]
    if accountant == "rdp" and order in (RDP_ALPHAS[0], RDP_ALPHAS[-1]):
        raise PrivacyBudgetError(f"RDP optimal order {order} is at the edge of the alpha range")
    if not math.isfinite(eps) or eps > target_epsilon + 1e-9:
        raise PrivacyBudgetError(f"achieved epsilon {eps:.4f} > target {target_epsilon}")
    return Accounting(accountant=accountant, noise_multiplier=float(sigma), sample_rate=float(q),
                      steps=int(steps), delta=float(delta), target_epsilon=float(target_epsilon),
                      epsilon=float(eps), epsilons=epsilons, rdp_optimal_order=order)
