"""Joint pruning-ratio / bandwidth allocation (problem P1 of papers/pruning_personalization_kkt.md).

Per device k of the round: non-prunable time ``P_k`` (downlink + personalised compute, s),
prunable compute ``A_k`` (s, scales with the kept fraction ``x_k = 1 - rho_k``), uplink payload
of the unpruned global part ``S_k`` (bits, also scales with ``x_k``), ``gamma_k = p_k h_k / N0``
(Hz) and a weight ``w_k``::

    minimize   sum_k w_k rho_k                       (maximise the convergence bound)
    subject to P_k + x_k A_k + x_k S_k / r_k(b_k) <= T_max
               sum_k b_k <= B,  0 <= rho_k <= rho_max,  b_k >= 0

with ``r_k(b) = b log2(1 + gamma_k / b)``. In ``x`` it is convex: the deadline is
``x_k <= g_k(b_k) = T'_k r_k / (A_k r_k + S_k)`` with ``T'_k = T_max - P_k`` (notes, 5.1).

Solvers:

* :func:`solve_kkt` -- the notes' decoupled KKT solution, vectorised: step 1 ``rho_k(b)`` in
  closed form; step 2 thresholds ``b_min`` / ``b_full`` through the Lambert-W inverse of the rate,
  then the multiplier ``lambda`` of the bandwidth budget by bisection, each device's bandwidth
  solving ``w_k g_k'(b) = lambda`` by safeguarded Newton steps.
* :class:`JointPruningProblem` -- P1 in cvxpy, built once per cohort size with Parameters (DPP),
  in normalised units (bandwidth in equal shares, time in units of ``T_max``), with the KKT
  analysis's bandwidth range ``[b_min_k, b_full_k]`` as valid cuts. Known limit (measured on
  physical instances with Rayleigh fading): agrees with the closed form to ~1e-7 up to ~30
  devices, ~1e-5 at 100, ~2e-4 at 500; at 1,000 Clarabel mostly stops with
  InsufficientProgress (SNR at an equal share spans ~1e-1..1e6). Failures come back as
  ``status="solver_failed: ..."``, never as exceptions; the allocator then uses the closed form.
* :func:`kkt_certificate` -- residuals of every KKT condition for any (rho, b, lambda).

The companion problems of the notes' section 6.3 reuse existing pieces: fixed pruning with the
minimum round latency is :mod:`channels.minmax_latency` with ``fixed = P + x A`` and payload
``x S``; equal bandwidth is step 1 alone (:func:`rho_for_bandwidth`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from channels.allocation import DPP_MAX_DEVICES
from channels.link import RATE_SCALE_EXPONENT, shannon_rate_bps
from channels.rate_inverse import bandwidth_for_rate

LN2 = np.log(2.0)


@dataclass(frozen=True)
class JointInstance:
    """One round's P1 data; all arrays [n]. Units: s, s, bits, Hz, -, Hz, s, -."""

    fixed_s: NDArray[np.float64]  # P_k
    prunable_s: NDArray[np.float64]  # A_k
    payload_bits: NDArray[np.float64]  # S_k (unpruned global part)
    gamma_hz: NDArray[np.float64]
    weights: NDArray[np.float64]
    budget_hz: float
    t_max_s: float
    rho_max: float
    # S0_k: bits sent whatever the pruning (e.g. a keep-mask bitmap), None = 0. The deadline
    # becomes P + x A + (S0 + x S) / r(b); still concave in b through g below.
    fixed_bits: NDArray[np.float64] | None = None

    @property
    def n(self) -> int:
        return int(self.fixed_s.size)

    @property
    def bits0(self) -> NDArray[np.float64]:
        """``S0_k``, ndarray [n] bits (zeros when not given)."""
        return np.zeros_like(self.fixed_s) if self.fixed_bits is None else self.fixed_bits

    @property
    def slack_s(self) -> NDArray[np.float64]:
        """``T'_k = T_max - P_k``: time left for prunable work and upload."""
        return self.t_max_s - self.fixed_s


@dataclass(frozen=True)
class JointSolution:
    """rho [n], bandwidth_hz [n], the budget multiplier ``lam`` and a status.

    ``status``: "optimal" (pruning active, budget binding), "no_pruning_needed", or
    "infeasible: ..." naming the devices; ``infeasible_devices`` lists their indices.
    """

    rho: NDArray[np.float64]
    bandwidth_hz: NDArray[np.float64]
    lam: float
    status: str
    infeasible_devices: list[int] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return not self.status.startswith("infeasible")


def kept_fraction_cap(inst: JointInstance, bandwidth_hz) -> NDArray[np.float64]:
    """``g_k(b) = (T' r - S0) / (A r + S)``: the largest kept fraction meeting the deadline
    at bandwidth b (step 1); negative where even the fixed bits miss it."""
    rate = shannon_rate_bps(bandwidth_hz, inst.gamma_hz)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (inst.slack_s * rate - inst.bits0) / (inst.prunable_s * rate + inst.payload_bits)
    return np.where(inst.slack_s > 0, np.nan_to_num(g, nan=0.0, posinf=np.inf), 0.0)


def rho_for_bandwidth(inst: JointInstance, bandwidth_hz) -> NDArray[np.float64]:
    """Step 1: ``rho_k(b) = clip(1 - g_k(b), 0, rho_max)`` (the equal-bandwidth companion)."""
    return np.clip(1.0 - kept_fraction_cap(inst, bandwidth_hz), 0.0, inst.rho_max)


def latency_s(inst: JointInstance, rho, bandwidth_hz) -> NDArray[np.float64]:
    """Per-device round latency ``P + x A + (S0 + x S) / r(b)``, ndarray [n] s."""
    x = 1.0 - np.asarray(rho, dtype=float)
    rate = shannon_rate_bps(bandwidth_hz, inst.gamma_hz)
    sent = inst.bits0 + x * inst.payload_bits
    with np.errstate(divide="ignore", invalid="ignore"):
        upload = np.where(sent > 0, sent / rate, 0.0)
    return inst.fixed_s + x * inst.prunable_s + upload


def bandwidth_for_kept_fraction(inst: JointInstance, x) -> NDArray[np.float64]:
    """Smallest b with ``g_k(b) >= x``: rate ``(S0 + x S) / (T' - x A)`` inverted by
    Lambert W."""
    x = np.broadcast_to(np.asarray(x, dtype=float), inst.fixed_s.shape)
    room = inst.slack_s - x * inst.prunable_s
    sent = inst.bits0 + x * inst.payload_bits
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.where(room > 0, sent / room, np.inf)
    target = np.where(sent > 0, target, 0.0)
    return bandwidth_for_rate(target, inst.gamma_hz)


def _g_slope(inst: JointInstance, b):
    """``g_k'(b) = (T'_k S_k + A_k S0_k) r'(b) / (A_k r(b) + S_k)^2`` and ``g_k''(b)``."""
    return _slopes(b, inst.gamma_hz, inst.prunable_s, inst.payload_bits, inst.slack_s, inst.bits0)


def _slopes(b, gamma, a, s, tp, s0=0.0):
    """``g'`` and ``g''`` from ``r'(b) = log2(1 + y) - y / ((1 + y) ln 2)``, y = gamma / b.
    With fixed bits ``s0`` the numerator ``T' S`` of g' becomes ``T' S + A S0`` (quotient
    rule on ``(T' r - S0) / (A r + S)``); g stays concave."""
    y = gamma / b
    log_term = np.log1p(y) / LN2
    rate = b * log_term
    r1 = log_term - y / ((1.0 + y) * LN2)
    r2 = -(y * y) / (b * (1.0 + y) ** 2 * LN2)  # r''(b) < 0
    den = a * rate + s
    num = tp * s + a * s0
    g1 = num * r1 / den**2
    g2 = num * (r2 * den - 2.0 * a * r1 * r1) / den**3
    return g1, g2


class _PriceSolver:
    """Per-device bandwidth at a bandwidth price lam: the b in [lo, hi] with w g'(b) = lam.

    ``g'`` decreases in b, so a device whose slope at ``lo`` is already below the price sits at
    ``lo`` and one whose slope at ``hi`` is above it sits at ``hi``; only the others need
    Newton steps (safeguarded by bisection), warm-started from the previous price.
    """

    def __init__(self, inst: JointInstance, lo, hi, start):
        self.w = np.maximum(inst.weights, 1e-300)
        self.consts = (inst.gamma_hz, inst.prunable_s, inst.payload_bits, inst.slack_s, inst.bits0)
        self.lo, self.hi = lo, hi
        self.g1_lo = _slopes(lo, *self.consts)[0]
        self.g1_hi = _slopes(hi, *self.consts)[0]
        self.log_lo, self.log_hi, self.log_w = np.log(lo), np.log(hi), np.log(self.w)
        self.b = np.clip(start, lo, hi)  # where the first Newton solves start
        self.slope = 0.0  # d(sum b) / d(lam) at the last price

    def __call__(self, lam: float) -> np.ndarray:
        target = lam / self.w
        b = np.where(self.g1_lo <= target, self.lo, np.where(self.g1_hi >= target, self.hi, self.b))
        inner = np.flatnonzero((self.g1_lo > target) & (self.g1_hi < target))
        if inner.size:
            consts = tuple(c[inner] for c in self.consts)
            lo, hi = self.log_lo[inner], self.log_hi[inner]
            log_t = np.log(lam) - self.log_w[inner]
            u = np.clip(np.log(self.b[inner]), lo, hi)
            # Newton on log g'(e^u) = log(lam / w): g' is close to a power law in b in every
            # regime, so in log-log coordinates a few steps converge from anywhere in the
            # bracket (in b itself the steps from above overshoot and bisection takes over).
            for _ in range(60):
                x = np.exp(u)
                g1, g2 = _slopes(x, *consts)
                f = np.log(g1) - log_t  # decreasing in u
                lo = np.where(f > 0, u, lo)
                hi = np.where(f <= 0, u, hi)
                with np.errstate(divide="ignore", invalid="ignore"):
                    newton = u - f * g1 / (x * g2)
                # inclusive: at the exact root the step is zero and u already is a bracket end
                ok = (newton >= lo) & (newton <= hi) & np.isfinite(newton)
                u_next = np.where(ok, newton, 0.5 * (lo + hi))
                # Newton steps of at most 1e-7 leave an error ~1e-14 after them (quadratic
                # convergence): stop once every device takes one
                done = np.all(ok & (np.abs(u_next - u) <= 1e-7))
                u = u_next
                if done:
                    break
            b[inner] = np.clip(np.exp(u), self.lo[inner], self.hi[inner])
            # implicit derivative of w g'(b) = lam on the interior devices: db/dlam = 1/(w g'')
            # (g'' from the last Newton step, 1e-7 away in log b: plenty for the price step)
            self.slope = float(np.sum(1.0 / (self.w[inner] * g2)))
        else:
            self.slope = 0.0
        self.b = b
        return b


def _solve_price(price: _PriceSolver, budget_hz: float, tol: float) -> float:
    """The lam with ``sum_k b_k(lam) = budget``: Newton in log(lam) using the implicit slope,
    falling back to bisection whenever a step leaves the bracket or stalls."""
    lo = float(np.log(max(np.min(price.w * price.g1_hi), 1e-300))) - 1.0  # sum b >= budget
    hi = float(np.log(np.max(price.w * price.g1_lo)))  # sum b = sum b_min <= budget
    # start at the median price of the devices' starting bandwidths (equal shares): sum b is
    # then near the budget already
    guess = float(np.log(np.median(price.w * _slopes(price.b, *price.consts)[0])))
    log_lam = guess if lo < guess < hi else 0.5 * (lo + hi)
    for _ in range(200):
        lam = float(np.exp(log_lam))
        total = float(price(lam).sum())
        excess = total - budget_hz
        if excess > 0:
            lo = log_lam
        else:
            hi = log_lam
        if abs(excess) <= tol * budget_hz or hi - lo <= tol:
            break
        # Newton on log(sum b) against log(lam): sum b(lam) is close to a power law, so this
        # converges from far away in a few steps (plain Newton on sum b crawls in from above)
        slope = price.slope * lam / total  # d log(sum b) / d log(lam) < 0
        step = log_lam - np.log(total / budget_hz) / slope if slope < 0 else np.nan
        log_lam = step if lo < step < hi else 0.5 * (lo + hi)
    return lam


def solve_kkt(inst: JointInstance, *, tol: float = 1e-12) -> JointSolution:
    """The decoupled KKT solution (notes, 5.2). Never raises; infeasibility is a status."""
    n = inst.n
    if n == 0:
        return JointSolution(np.zeros(0), np.zeros(0), 0.0, "no devices")
    x_min = 1.0 - inst.rho_max
    # 0. Devices that cannot meet T_max whatever they get.
    b_min = bandwidth_for_kept_fraction(inst, x_min)
    hopeless = ~np.isfinite(b_min) | (inst.slack_s <= 0)
    if hopeless.any() or inst.budget_hz <= 0:
        bad = np.flatnonzero(hopeless).tolist() if hopeless.any() else list(range(n))
        reason = "deadline unreachable" if hopeless.any() else "no bandwidth"
        return JointSolution(
            np.full(n, inst.rho_max),
            np.zeros(n),
            np.nan,
            f"infeasible: {reason} for devices {bad}",
            bad,
        )
    if b_min.sum() > inst.budget_hz:
        # Name the devices that need the most bandwidth at maximum pruning until the rest fit.
        order = np.argsort(-b_min, kind="stable")
        over = np.cumsum(np.sort(b_min)) > inst.budget_hz
        k = int(over.sum())
        bad = sorted(order[:k].tolist())
        return JointSolution(
            np.full(n, inst.rho_max),
            b_min,
            np.nan,
            f"infeasible: sum of b_min exceeds the budget; devices {bad} need the most",
            bad,
        )
    b_full = bandwidth_for_kept_fraction(inst, 1.0)
    # 1. Enough bandwidth for everyone unpruned: no pruning, spread the spare in proportion.
    if np.all(np.isfinite(b_full)) and b_full.sum() <= inst.budget_hz:
        total = b_full.sum()
        bw = b_full * inst.budget_hz / total if total > 0 else np.full(n, inst.budget_hz / n)
        return JointSolution(np.zeros(n), bw, 0.0, "no_pruning_needed")
    # 2. Price bandwidth: sum_k b_k(lam) = B is decreasing in lam on
    #    (0, max_k w_k g_k'(b_min_k)]; safeguarded Newton on log(lam), each evaluation
    #    warm-starting every device's Newton solve from the previous one.
    b_full = np.where(np.isfinite(b_full), b_full, inst.budget_hz)  # x = 1 unreachable
    lo_b = np.maximum(b_min, 1e-300)
    hi_b = np.maximum(b_full, lo_b)
    price = _PriceSolver(inst, lo_b, hi_b, start=np.full(n, inst.budget_hz / n))
    lam = _solve_price(price, inst.budget_hz, tol)
    b = price.b.copy()  # the allocation at the returned price (its last evaluation)
    b *= inst.budget_hz / b.sum()  # remove the root-finding residue (~1e-12 relative)
    return JointSolution(rho_for_bandwidth(inst, b), b, lam, "optimal")


class JointPruningProblem:
    """P1 in cvxpy, built once per cohort size and re-solved with new Parameters (DPP up to
    ``DPP_MAX_DEVICES``, then canonicalised at every solve).

    Normalised units: bandwidth in equal shares ``beta_k = b_k / (B / n)`` (so ``gamma_k / (B/n)``
    is the SNR at an equal share, well scaled for any cohort size; normalising by B instead
    makes it vanish as n grows and the solver fails), time in units of ``T_max``. With
    ``q_k = A_k r_k / S_k`` (prunable compute time over upload time, dimensionless) the notes'
    deadline ``x_k <= g_k(b_k) = (T'_k / A_k) q_k / (1 + q_k)`` becomes three DPP constraints::

        (S_k / (A_k B)) q_k <= rate_k <= beta_k log2(1 + gamma_k / (B beta_k))
        z_k >= 1 / (1 + q_k)                      (so z_k is in (0, 1]: well scaled)
        x_k <= (T'_k / A_k) (1 - z_k)

    Devices with ``A_k = 0`` use ``S_k x_k <= T'_k r_k`` instead; both forms exist for every
    device and Parameters switch one of them off, so one compiled problem serves any mix. Every
    relaxation is tight at the optimum (more rate or a smaller ``z`` only helps the objective).

    Measured accuracy (``tests/channels/test_joint_pruning.py``, ``bench_joint_allocation``):
    on cohorts where pruning is active for a good part of the devices
    (``channels.joint_instances.pruning_active_instance``) it agrees with the closed form to
    ~1e-8 in the objective up to 1,000 devices. On near-degenerate cohorts (hundreds of devices
    at their bounds, one pruned: ``physical_instance`` with a deadline set by the slowest
    device) Clarabel
    reports ``optimal_inaccurate`` or fails beyond ~100 devices; the allocator then falls back
    to the closed form.
    """

    def __init__(self, n: int):
        import cvxpy as cp  # deferred: ~1 s import

        self.cp, self.n = cp, n
        self.share = cp.Variable(n, nonneg=True)
        self.kept = cp.Variable(n)
        self.rate = cp.Variable(n, nonneg=True)  # r_k / B, bit/s/Hz (linear-form devices)
        self.ratio = cp.Variable(n, nonneg=True)  # q_k
        self.z = cp.Variable(n, nonneg=True)
        self.weights = cp.Parameter(n, nonneg=True)
        self.rate_per_ratio = cp.Parameter(n, nonneg=True)  # S_k / (A_k B); 1 on linear devices
        self.cap = cp.Parameter(n, nonneg=True)  # T'_k / A_k (in T_max); 0 on linear devices
        self.relief = cp.Parameter(n, nonneg=True)  # 1 on linear devices (x <= 1), else 0
        self.lin_payload = cp.Parameter(n, nonneg=True)  # S_k / (B T_max) on linear devices
        self.lin_slack = cp.Parameter(n, nonneg=True)  # T'_k / T_max on linear devices
        self.x_min = cp.Parameter()
        # Valid cuts from the KKT analysis: an optimal b_k lies in [b_min_k, b_full_k] (less
        # misses the deadline even at rho_max; more is wasted on an unpruned device). They keep
        # an optimal solution and bound the region the interior point explores.
        self.share_lo = cp.Parameter(n, nonneg=True)
        self.share_hi = cp.Parameter(n, nonneg=True)
        beta, x = self.share, self.kept
        self.budget_constraint = cp.sum(beta) <= n
        # The rate's cone is scaled per device by c_k = max(1, gamma_k)^p, gamma in equal
        # shares (why and which p: channels.link.RATE_SCALE_EXPONENT).
        self.inv_scale = cp.Parameter(n, nonneg=True)  # 1 / c_k
        self.gamma_scaled = cp.Parameter(n, nonneg=True)  # gamma_k / c_k
        scaled_share = cp.multiply(self.inv_scale, beta)
        rate = -cp.rel_entr(scaled_share, scaled_share + self.gamma_scaled) / LN2  # = r / c
        constraints = [
            cp.multiply(self.inv_scale, self.rate) <= rate,
            cp.multiply(self.rate_per_ratio, self.ratio) <= rate,  # (S / (A B c)) q <= r / c
            self.z >= cp.inv_pos(1.0 + self.ratio),
            self.z <= 1.0,
            x <= cp.multiply(self.cap, 1.0 - self.z) + self.relief,
            cp.multiply(self.lin_payload, x) <= cp.multiply(self.lin_slack, self.rate),
            x <= 1.0,
            x >= self.x_min,
            beta >= self.share_lo,
            beta <= self.share_hi,
            self.budget_constraint,
        ]
        self.problem = cp.Problem(cp.Maximize(self.weights @ x), constraints)
        assert self.problem.is_dcp() and self.problem.is_dpp()

    def solve(self, inst: JointInstance, solver: str = "CLARABEL") -> JointSolution:
        """Solve; a solver error or non-optimal status is returned as status, never raised."""
        n, t = inst.n, inst.t_max_s
        bgt = inst.budget_hz / n  # the unit of bandwidth: an equal share
        linear = inst.prunable_s <= 0
        a = np.where(linear, 1.0, inst.prunable_s)
        slack = inst.slack_s / t
        gamma = inst.gamma_hz / bgt
        scale = np.maximum(1.0, gamma) ** RATE_SCALE_EXPONENT
        self.inv_scale.value = 1.0 / scale
        self.gamma_scaled.value = gamma / scale
        self.weights.value = inst.weights / inst.weights.sum()
        self.rate_per_ratio.value = np.where(linear, 1.0, inst.payload_bits / (a * bgt)) / scale
        self.cap.value = np.where(linear, 0.0, np.maximum(inst.slack_s, 0.0) / a)
        self.relief.value = np.where(linear, 1.0, 0.0)
        self.lin_payload.value = np.where(linear, inst.payload_bits / (bgt * t), 0.0)
        self.lin_slack.value = np.where(linear, np.maximum(slack, 0.0), 0.0)
        self.x_min.value = 1.0 - inst.rho_max
        b_min = bandwidth_for_kept_fraction(inst, 1.0 - inst.rho_max)
        b_full = bandwidth_for_kept_fraction(inst, 1.0)
        if not np.all(np.isfinite(b_min)) or b_min.sum() > inst.budget_hz:
            # infeasible: leave the cuts out and let the solver say so
            b_min, b_full = np.zeros(n), np.full(n, float(inst.budget_hz))
        b_full = np.where(np.isfinite(b_full), np.maximum(b_full, b_min), inst.budget_hz)
        if b_full.sum() <= inst.budget_hz:  # no pruning needed: any b >= b_full is optimal
            b_full = np.full(n, float(inst.budget_hz))
        self.share_lo.value = b_min / bgt
        self.share_hi.value = np.minimum(b_full, inst.budget_hz) / bgt
        try:
            # warm_start=False: cvxpy otherwise reuses Clarabel's solver object through
            # update(), and the answer then depends on the previous rounds' data (measured:
            # the same instance solved or failed depending on what was solved before).
            self.problem.solve(solver=solver, warm_start=False, ignore_dpp=self.n > DPP_MAX_DEVICES)
        except self.cp.error.SolverError as exc:
            return JointSolution(np.full(n, np.nan), np.zeros(n), np.nan, f"solver_failed: {exc}")
        status = self.problem.status
        if status in ("infeasible", "infeasible_inaccurate"):
            return JointSolution(
                np.full(n, inst.rho_max),
                np.zeros(n),
                np.nan,
                f"infeasible: cvxpy reports {status}",
                list(range(n)),
            )
        if status not in ("optimal", "optimal_inaccurate") or self.kept.value is None:
            return JointSolution(
                np.full(n, np.nan), np.zeros(n), np.nan, f"solver_failed: {status}"
            )
        beta = np.maximum(np.asarray(self.share.value), 0.0)
        beta *= n / max(beta.sum(), n)
        rho = np.clip(1.0 - self.kept.value, 0.0, inst.rho_max)
        # The budget dual prices one equal share per unit of normalised objective; convert to
        # the KKT solver's lambda (objective weights w, bandwidth in Hz).
        lam = float(self.budget_constraint.dual_value) * inst.weights.sum() / bgt
        return JointSolution(rho, beta * bgt, lam, "optimal" if status == "optimal" else status)


def kkt_certificate(
    inst: JointInstance, rho, bandwidth_hz, lam: float, *, bound_tol: float = 1e-9
) -> dict[str, float]:
    """Residuals of the KKT conditions of P1 in the convex form ``x_k <= g_k(b_k)``.

    Lagrangian ``-sum w x + sum mu (x - g(b)) + lam (sum b - B) + sum alpha (x - 1)
    + sum beta (x_min - x)``. Given (rho, b, lam) the other multipliers follow:
    ``mu_k = lam / g_k'(b_k)`` (stationarity in b), then ``alpha_k = w_k - mu_k`` at x = 1 and
    ``beta_k = mu_k - w_k`` at x = x_min (stationarity in x); anything left is residual.
    All residuals are scaled (by B, T_max or the weights) so 1e-6 means 1e-6 relative.
    ``bound_tol``: a kept fraction this close to 1 or x_min counts as at that bound (an
    interior-point solution stops ~1e-6 inside its bounds; the closed form lands on them).
    """
    rho = np.asarray(rho, dtype=float)
    b = np.asarray(bandwidth_hz, dtype=float)
    x, x_min = 1.0 - rho, 1.0 - inst.rho_max
    w = inst.weights / inst.weights.sum()
    lam_n = lam * inst.budget_hz / inst.weights.sum()  # price of a unit budget fraction
    g = kept_fraction_cap(inst, b)
    g1, _ = _g_slope(inst, np.maximum(b, 1e-300))
    g1 = g1 * inst.budget_hz  # slope per unit budget fraction
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.where(g1 > 0, lam_n / g1, 0.0)
    at_top = x >= 1.0 - bound_tol
    at_bottom = x <= x_min + bound_tol
    alpha = np.where(at_top, np.maximum(w - mu, 0.0), 0.0)
    beta = np.where(at_bottom, np.maximum(mu - w, 0.0), 0.0)
    stationarity_x = -w + mu + alpha - beta
    lat = latency_s(inst, rho, b)
    return {
        "primal_budget": max(b.sum() / inst.budget_hz - 1.0, 0.0),
        "primal_deadline": float(np.max(np.maximum(lat / inst.t_max_s - 1.0, 0.0), initial=0.0)),
        "primal_bounds": float(np.max(np.maximum(np.maximum(-rho, rho - inst.rho_max), 0.0))),
        "dual_feasibility": float(max(-lam_n, 0.0)),
        "complementary_budget": abs(lam_n * (b.sum() / inst.budget_hz - 1.0)),
        "complementary_deadline": float(np.max(np.abs(mu * np.minimum(g - x, 1.0)), initial=0.0)),
        "stationarity": float(np.max(np.abs(stationarity_x) / np.maximum(w, 1e-300), initial=0.0)),
    }


@dataclass(frozen=True)
class JointAllocation:
    """A round's joint decision: rho [n], bandwidth_hz [n] (0 for dropped devices)."""

    rho: NDArray[np.float64]
    bandwidth_hz: NDArray[np.float64]
    status: str
    latency_s: float  # predicted max over the devices kept in the round
    t_max_s: float  # the deadline actually used (raised when relaxed)
    dropped: list[int]
    certificate: dict[str, float]
    solve_time_s: float


# cvxpy (Clarabel) stops ~1e-6..1e-5 inside its bounds; its certificate classifies bounds
# with this tolerance, and a solution whose residuals exceed the limit is replaced by the
# closed form (and the round's status says so).
CVXPY_BOUND_TOL = 1e-5
# Measured on 1,650 random pruning-active instances: accurate answers (within 1e-4 of the
# closed form) have residuals up to 2.9e-4; the rare inaccurate ones had >= 1e-3.
CVXPY_MAX_RESIDUAL = 5e-4


@dataclass
class JointPruningAllocator:
    """Per round: solve P1 (KKT closed form or cvxpy); handle infeasible rounds as configured.

    ``on_infeasible="relax"``: the deadline becomes the smallest feasible one, the min-max
    latency with every device at maximum pruning (:mod:`channels.minmax_latency` with
    ``fixed = P + x_min A`` and payload ``x_min S``). ``"drop"``: the devices the solver names
    are left out and the rest re-solved. Devices with no usable channel are always dropped.
    A cvxpy failure, or a cvxpy answer whose KKT residuals exceed ``CVXPY_MAX_RESIDUAL``,
    falls back to the closed form and says so.
    """

    t_max_s: float
    rho_max: float = 0.9
    solver: str = "kkt"
    on_infeasible: str = "relax"
    name: str = "joint_pruning"

    def __post_init__(self):
        self._problems: dict[int, JointPruningProblem] = {}

    def _solve(self, inst: JointInstance) -> tuple[JointSolution, str, float]:
        """(solution, note, bound tolerance of its certificate)."""
        if self.solver == "cvxpy" and inst.n > 0 and inst.bits0.any():
            # the cvxpy form of P1 has no fixed payload: the closed form budgets it exactly
            return solve_kkt(inst), "cvxpy has no fixed payload (mask bitmap) -> kkt; ", 1e-9
        if self.solver == "cvxpy" and inst.n > 0:
            if inst.n not in self._problems:
                self._problems[inst.n] = JointPruningProblem(inst.n)
            sol = self._problems[inst.n].solve(inst)
            if not sol.feasible:
                return sol, "", CVXPY_BOUND_TOL
            if sol.status.startswith("solver_failed"):
                return solve_kkt(inst), f"{sol.status} -> kkt; ", 1e-9
            cert = kkt_certificate(inst, sol.rho, sol.bandwidth_hz, sol.lam, bound_tol=1e-5)
            worst = max(cert.values())
            if not worst <= CVXPY_MAX_RESIDUAL:  # e.g. a degenerate, near-unpruned cohort
                return (
                    solve_kkt(inst),
                    f"cvxpy {sol.status}, KKT residual {worst:.1e} -> kkt; ",
                    1e-9,
                )
            return sol, "", CVXPY_BOUND_TOL
        return solve_kkt(inst), "", 1e-9

    def allocate_joint(
        self,
        *,
        fixed_s,
        prunable_s,
        payload_bits,
        gamma_hz,
        weights,
        total_bandwidth_hz,
        fixed_bits=None,
    ) -> JointAllocation:
        """One round's (rho, bandwidth). ``payload_bits`` scale with the kept fraction;
        ``fixed_bits`` (e.g. a mask bitmap) are sent whatever the pruning."""
        import time

        from channels.minmax_latency import minmax_latency_bisection

        started = time.perf_counter()
        n = len(fixed_s)
        keep = np.isfinite(gamma_hz) & (np.asarray(gamma_hz) > 0)
        notes = "" if keep.all() else f"no channel: dropped {np.flatnonzero(~keep).tolist()}; "
        t_max = self.t_max_s

        def instance(mask, deadline):
            return JointInstance(
                np.asarray(fixed_s, float)[mask],
                np.asarray(prunable_s, float)[mask],
                np.asarray(payload_bits, float)[mask],
                np.asarray(gamma_hz, float)[mask],
                np.asarray(weights, float)[mask],
                float(total_bandwidth_hz),
                deadline,
                self.rho_max,
                None if fixed_bits is None else np.asarray(fixed_bits, float)[mask],
            )

        inst = instance(keep, t_max)
        sol, fallback, bound_tol = self._solve(inst)
        notes += fallback
        while not sol.feasible and inst.n > 0:
            notes += f"{sol.status} at T_max={t_max:.6g} s; "
            if self.on_infeasible == "relax":
                x_min = 1.0 - self.rho_max
                smallest = minmax_latency_bisection(
                    (inst.bits0 + x_min * inst.payload_bits) / 1e6,
                    inst.gamma_hz / 1e6,
                    inst.fixed_s + x_min * inst.prunable_s,
                    inst.budget_hz / 1e6,
                )
                if not np.isfinite(smallest.latency_s):
                    break
                t_max = smallest.latency_s * (1.0 + 1e-9)
                notes += f"relaxed T_max to {t_max:.6g} s; "
                inst = instance(keep, t_max)
                sol, fallback, bound_tol = self._solve(inst)
                notes += fallback
                break
            kept_idx = np.flatnonzero(keep)
            keep[kept_idx[sol.infeasible_devices]] = False
            notes += f"dropped {kept_idx[sol.infeasible_devices].tolist()}; "
            inst = instance(keep, t_max)
            sol, fallback, bound_tol = self._solve(inst)
            notes += fallback
        rho = np.full(n, self.rho_max)
        bw = np.zeros(n)
        if inst.n and sol.feasible:
            rho[keep], bw[keep] = sol.rho, sol.bandwidth_hz
            cert = kkt_certificate(inst, sol.rho, sol.bandwidth_hz, sol.lam, bound_tol=bound_tol)
            lat = float(latency_s(inst, sol.rho, sol.bandwidth_hz).max())
        else:
            keep[:] = False
            cert, lat = {}, float("inf")
        status = notes + (sol.status if inst.n else "no devices left")
        return JointAllocation(
            rho,
            bw,
            status,
            lat,
            t_max,
            np.flatnonzero(~keep).tolist(),
            cert,
            time.perf_counter() - started,
        )
