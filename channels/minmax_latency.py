"""Min-max round latency bandwidth allocation.

Problem (per round, cohort of n devices, FDMA uplink)::

    minimize   T
    subject to c_k + S_k / r_k(b_k) <= T      for every device k
               sum_k b_k <= B,  b_k >= 0

with ``r_k(b) = b log2(1 + gamma_k / b)`` (Shannon) or ``r_k(b) = se_k b`` (fixed spectral
efficiency). Three solvers:

* :class:`MinMaxLatencyProblem` -- cvxpy, built once per cohort size with Parameters (DPP) and
  re-solved; the Shannon rate is ``-rel_entr(b, b + gamma) / ln 2`` (exponential cone).
* :func:`minmax_latency_bisection` -- the KKT structure says every device with demand finishes at
  the same T*, so ``b_k(T) = bandwidth_for_rate(S_k / (T - c_k))`` (Lambert W) and T* solves
  ``sum_k b_k(T) = B`` by a 1-D root search. Exact for the Shannon model, no solver needed.
* :func:`minmax_latency_fixed_se` -- the same with a linear rate, where ``b_k = S_k / (se_k (T -
  c_k))``; for ``c = 0`` the closed form is ``T* = sum_k (S_k / se_k) / B``.

Solvers work in scaled units (MHz, Mbit, Mbit/s, seconds): raw Hz and bit magnitudes (1e6-1e12)
make interior-point solvers fail.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from channels.allocation import DPP_MAX_DEVICES, Allocation, EqualShare, predicted_latency_s
from channels.link import shannon_rate_bps
from channels.rate_inverse import bandwidth_for_rate

MEGA = 1e6
# A cvxpy split more than this much slower than the exact optimum counts as a failed solve.
CERTIFY_REL = 1e-5
# Scalings of the cvxpy problem, tried in turn: (bandwidth unit of each device, exponent of its
# cone scale, Clarabel options); see MinMaxLatencyProblem. On random, physical and shipped
# cohorts of 100 to 5,000 devices each converges on most cohorts, but which one fails varies
# from cohort to cohort (benchmarks/bench_scale.py), so a failed or uncertified solve is
# retried with the next. A static regularisation of 1e-12 (Clarabel's default: 1e-8)
# converged more often.
_TIGHT = {"static_regularization_constant": 1e-12}
CONE_SCALINGS: tuple[tuple[Literal["equal_share", "equal_latency"], float, dict], ...] = (
    ("equal_share", 0.8, _TIGHT),
    ("equal_latency", 1.0, _TIGHT),
    ("equal_share", 1.0, _TIGHT),
    ("equal_latency", 0.8, _TIGHT),
    ("equal_share", 0.65, _TIGHT),
    ("equal_latency", 0.65, _TIGHT),
    ("equal_share", 0.5, _TIGHT),
    ("equal_share", 0.0, _TIGHT),
)
RateModel = Literal["shannon", "fixed_se"]
# A device guaranteed at least this many times its gamma of bandwidth at the optimum (SNR at
# most 1/500 there) may take the Pade form of its rate, whose relative error is ~SNR^2/12
# (<= 3.3e-7 here, against CERTIFY_REL = 1e-5); see MinMaxLatencyProblem.
WIDEBAND_MARGIN = 500.0


def _bandwidth_at_latency(t_s, demand, gamma, fixed_s, rate_model: RateModel):
    """Per-device bandwidth needed to finish exactly at ``t_s`` (inf if impossible)."""
    slack = t_s - fixed_s
    with np.errstate(divide="ignore", invalid="ignore"):
        target_rate = np.where(slack > 0, demand / slack, np.inf)
    target_rate = np.where(demand > 0, target_rate, 0.0)
    if rate_model == "fixed_se":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(demand > 0, target_rate / gamma, 0.0)
    return bandwidth_for_rate(target_rate, gamma)


def _slowest_latency_s(bandwidth, demand, gamma, fixed_s, rate_model: RateModel) -> float:
    """The slowest device's ``fixed + demand / rate`` for a split of the band (inf when a
    device with something to send gets no rate; no upload for a device with nothing)."""
    rate = shannon_rate_bps(bandwidth, gamma) if rate_model == "shannon" else gamma * bandwidth
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.max(fixed_s + np.where(demand > 0, demand / rate, 0.0)))


def _bandwidth_slope(t_s, bandwidth, demand, gamma, fixed_s, rate_model: RateModel):
    """``d b_k / d T`` [n] at ``t_s``, given the bandwidths ``b_k(T)`` needed there: the target
    rate ``R = S / (T - c)`` falls as ``-R / (T - c)``, and the rate grows with the band as
    ``r'(b) = log2(1 + x) - x / ((1 + x) ln 2)`` with ``x = gamma / b`` (Shannon; ``se`` for a
    linear rate), so ``b' = R' / r'(b)``. 0 for devices with nothing to send."""
    slack = t_s - fixed_s
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf: no Newton step
        rate_slope = -(demand / slack) / slack
        if rate_model == "fixed_se":
            marginal = gamma
        else:
            x = gamma / bandwidth
            marginal = np.log2(1.0 + x) - x / ((1.0 + x) * np.log(2.0))
        return np.where(demand > 0, rate_slope / marginal, 0.0)


# Newton has converged once a step is below this fraction of T (1e-13: far below any time the
# simulator resolves, and above the rounding noise of the bandwidth sum near rate ceilings).
_CONVERGED = 1e-13


def _solve_latency(demand, gamma, fixed_s, budget, rate_model: RateModel) -> float:
    """Smallest T with ``sum_k b_k(T) <= budget``: the unique root of a decreasing function.

    Newton's method on ``h(T) = 1 / sum_k b_k(T) - 1 / budget``, which rises from
    ``-1 / budget`` at the floor (where some device needs unlimited bandwidth) and is nearly
    linear (exactly so for one device at a linear rate), so its tangents overshoot little,
    where those of ``sum_k b_k(T)`` itself (flat far right, a pole at the floor) are thrown
    out of range. A bracket [lo, hi] is kept throughout: a step that leaves it is replaced by
    the chord through the bracket's ends, and the answer is the feasible end ``hi``. Typically
    5-10 evaluations, where bisection to machine precision takes ~55.
    """
    inv_budget = 1.0 / budget

    def h_and_slope(t_s: float) -> tuple[float, float]:
        bw = _bandwidth_at_latency(t_s, demand, gamma, fixed_s, rate_model)
        total = float(bw.sum())
        if not math.isfinite(total):  # below the floor: some device cannot make it at all
            return -inv_budget, math.nan
        if total <= 0.0:  # every bandwidth underflowed (T astronomically long): feasible
            return math.inf, math.nan
        slope = float(_bandwidth_slope(t_s, bw, demand, gamma, fixed_s, rate_model).sum())
        # h' = -S' / S^2 (S' < 0: h rises)
        return 1.0 / total - inv_budget, -(slope / total) / total  # (total**2 can underflow)

    # Lower end: latency with unlimited bandwidth (rate saturates at gamma/ln2 for Shannon).
    uploads = demand > 0
    if rate_model == "shannon":
        floor_s = np.where(uploads, fixed_s + demand * np.log(2.0) / gamma, fixed_s)
    else:
        floor_s = fixed_s.copy()
    lo = float(floor_s.max())
    # Upper end: equal share is feasible, so its latency bounds the optimum.
    share = np.full(demand.shape, budget / demand.size)
    hi = _slowest_latency_s(share, demand, gamma, fixed_s, rate_model)
    value, slope = h_and_slope(hi)
    if value < 0:  # equal share sits right on the budget: nudge into the feasible side
        hi *= 1.0 + 1e-12
        value, slope = h_and_slope(hi)
    lo_value, hi_value = -inv_budget, value  # h is -1/budget at the floor (and continuous)
    t_s = hi
    for _ in range(100):
        if value >= 0:
            hi, hi_value = t_s, value
        else:
            lo, lo_value = t_s, value
        if value == 0 or hi - lo <= 4.0 * np.spacing(hi):
            return hi
        # (a slope that overflowed says nothing: the chord or a halving steps instead)
        newton = t_s - value / slope if 0.0 < slope < math.inf else math.nan
        if abs(newton - t_s) <= _CONVERGED * t_s:
            # Converged: the root is within rounding of t_s (the bandwidths of devices near
            # their rate ceiling are ill-conditioned, so the sum's sign flickers there). Return
            # the first point at or past it that is feasible.
            if value >= 0:
                return t_s
            up = max(2.0 * abs(newton - t_s), 4.0 * np.spacing(t_s))
            for _ in range(8):
                if t_s + up >= hi or h_and_slope(t_s + up)[0] >= 0:
                    return min(t_s + up, hi)
                up *= 4.0
            return hi
        if lo < newton < hi:
            t_s = newton
        else:  # a tangent from the right can overshoot the floor: the chord instead
            chord = lo - lo_value * (hi - lo) / (hi_value - lo_value)
            t_s = chord if lo < chord < hi else 0.5 * (lo + hi)
        if not lo < t_s < hi:  # no float between them
            return hi
        value, slope = h_and_slope(t_s)
    return hi


def wideband_bottleneck(demand, gamma, fixed_s, budget) -> tuple[int, ...]:
    """The device that is power-limited while it holds most of the band at the optimum, as
    ``(k,)``, or ``()`` when there is none (Shannon rate; scaled units).

    No device beats its latency with the whole band, so ``T* >= T_lb = max_k L_k(B)``; the
    others' needed bandwidths ``b_j(T)`` fall as T grows, so at the optimum they hold at most
    ``sum_{j != k} b_j(T_lb)`` and device k (the one that sets ``T_lb``) at least the rest.
    When that rest is ``WIDEBAND_MARGIN`` times its gamma, its SNR at the optimum is at most
    1/500 and its rate depends on its bandwidth only at that relative order.
    """
    uploads = demand > 0
    if not uploads.any():
        return ()
    with np.errstate(divide="ignore", invalid="ignore"):
        full_band_s = np.where(uploads, fixed_s + demand / shannon_rate_bps(budget, gamma), -np.inf)
    k = int(np.argmax(full_band_s))
    needed = _bandwidth_at_latency(full_band_s[k], demand, gamma, fixed_s, "shannon")
    needed[k] = 0.0
    guaranteed = budget - float(needed.sum())  # -inf or nan when another ties with k
    return (k,) if guaranteed >= WIDEBAND_MARGIN * gamma[k] else ()


@dataclass(frozen=True)
class MinMaxSolution:
    """Scaled-units solution: ``bandwidth_mhz`` [n], ``latency_s``, ``status``."""

    bandwidth_mhz: NDArray[np.float64]
    latency_s: float
    status: str


def _split_unreachable(demand, gamma):
    """Devices that must upload but have no usable channel (gamma <= 0 or not finite)."""
    return (demand > 0) & ~(np.isfinite(gamma) & (gamma > 0))


def minmax_latency_bisection(
    demand_mbit, gamma_mhz, fixed_time_s, budget_mhz, rate_model: RateModel = "shannon"
) -> MinMaxSolution:
    """Min-max latency allocation by root search on T (see module docstring).

    Parameters are ndarray [n] in Mbit, MHz (or Mbit/s/MHz = bit/s/Hz spectral efficiency for
    ``rate_model="fixed_se"``), seconds, and a scalar budget in MHz.
    """
    demand = np.asarray(demand_mbit, dtype=float)
    gamma = np.asarray(gamma_mhz, dtype=float)
    fixed_s = np.asarray(fixed_time_s, dtype=float)
    bw = np.zeros(demand.shape)
    unreachable = _split_unreachable(demand, gamma)
    if unreachable.any():
        return MinMaxSolution(
            bw, np.inf, f"unreachable: devices {np.flatnonzero(unreachable).tolist()}"
        )
    if not (demand > 0).any():
        return MinMaxSolution(bw, float(fixed_s.max(initial=0.0)), "optimal")
    if budget_mhz <= 0:
        return MinMaxSolution(bw, np.inf, "no_bandwidth")
    t_s = _solve_latency(demand, gamma, fixed_s, budget_mhz, rate_model)
    bw = _bandwidth_at_latency(t_s, demand, gamma, fixed_s, rate_model)
    # Fill the budget exactly (the root is exact to ~1e-13; this removes the residue).
    bw *= budget_mhz / bw.sum()
    return MinMaxSolution(bw, float(t_s), "optimal")


def minmax_latency_fixed_se(demand_bits, se_bps_per_hz, fixed_time_s, budget_hz):
    """Closed form for a linear rate ``se_k b_k``: returns (latency_s, bandwidth_hz [n]).

    With no fixed times, ``T* = sum_k S_k / se_k / B`` and ``b_k = S_k / (se_k T*)``; with
    fixed times, T* solves ``sum_k S_k / (se_k (T - c_k)) = B`` (monotone, one root).
    """
    demand = np.asarray(demand_bits, dtype=float)
    se = np.asarray(se_bps_per_hz, dtype=float)
    fixed_s = np.asarray(fixed_time_s, dtype=float)
    if not np.any(fixed_s):
        t_s = float((demand / se).sum() / budget_hz)
    else:
        t_s = _solve_latency(demand / MEGA, se, fixed_s, budget_hz / MEGA, "fixed_se")
    return t_s, demand / (se * (t_s - fixed_s))


class MinMaxLatencyProblem:
    """The cvxpy problem for one cohort size, built once and re-solved with new Parameters.

    Normalised units, so the numbers stay O(1) whatever the cohort. Device k's bandwidth is
    ``x_k`` units ``a_k`` (an equal share ``B / n`` for ``"equal_share"``; for
    ``"equal_latency"`` the bandwidth it needs to finish by the equal-share latency, so a
    device with seconds of slack is not resolved at 1e-6 of an equal share; normalising by B
    instead made the shares vanish as n grows, and Clarabel failed on most cohorts from 700
    devices). Time is in units of the equal-share latency ``T_ref``, and each rate is relative
    to its value at one unit (``z_k = r_k(x_k a_k) / r_k(a_k)``). With ``u_k`` the upload time
    at one unit and ``c_k`` the fixed time, both over ``T_ref``::

        minimise T'  subject to  c_k + u_k w_k <= T',  w_k >= 1 / z_k,  sum_k a_k x_k <= B,
                                 r_k(a_k) z_k <= a_k x_k log2(1 + q_k / x_k)

    where ``q_k = gamma_k / a_k`` is the SNR at one unit. The exponential cone of the last
    line is scaled per device by ``s_k = max(1, q_k)^exponent`` (the cone is homogeneous, so
    any ``s_k > 0`` gives the same set). Which units and scaling let Clarabel converge varies
    from cohort to cohort (measured on cohorts of 100 to 5,000 devices whose SNRs span 70-90
    dB), so :class:`MinMaxLatency` retries a failed or uncertified solve with the next of
    ``CONE_SCALINGS``.

    Accuracy envelope: where a device's rate saturates (``q_k << x_k``: it would need the whole
    band to gain a little), its rate depends on its bandwidth only at second order inside the
    cone, so its latency is resolved to about the cone's precision over that SNR (random
    cohorts: within 1e-5 of the exact optimum, but not much better). :class:`MinMaxLatency`
    certifies every answer against the exact root search.

    ``wideband`` devices take the Pade form of the rate instead, ``ln(1 + u) >= 2u / (2 + u)``:
    ``r~(b) = (gamma / ln 2)(1 - 1 / (1 + 2b / gamma))``, i.e. ``pade_rate_unit z_k <= 1 -
    1 / (1 + 2 x_k / q_k)``, one second-order cone whose variable is the small term itself.
    Where a device holds most of the band at an SNR of 1e-4 or less, the exponential cone
    cancels its bandwidth dependence below Clarabel's precision (numerical failure with every
    scaling); this form does not. It never exceeds the Shannon rate, so its splits are
    feasible, and its relative error is ~``u^2 / 12``: meant for devices whose SNR at the
    optimum is small (:func:`wideband_bottleneck`).
    """

    def __init__(self, n: int, rate_model: RateModel = "shannon", wideband: tuple[int, ...] = ()):
        import cvxpy as cp  # deferred: cvxpy costs ~1 s to import and most runs never need it

        self.cp = cp
        self.n = n
        self.rate_model = rate_model
        self.wideband = tuple(sorted(wideband)) if rate_model == "shannon" else ()
        self.share = cp.Variable(n, nonneg=True)  # x_k = b_k / a_k
        self.latency = cp.Variable()  # T / T_ref
        self.relative_rate = cp.Variable(n, nonneg=True)  # z_k = r_k(x_k a_k) / r_k(a_k)
        self.inverse_rate = cp.Variable(n, nonneg=True)  # w_k >= 1 / z_k
        self.unit = cp.Parameter(n, nonneg=True)  # a_k / B
        self.upload = cp.Parameter(n, nonneg=True)  # u_k: upload time at one unit / T_ref
        self.fixed = cp.Parameter(n)  # c_k / T_ref
        x, z = self.share, self.relative_rate
        if rate_model == "shannon":
            self.inv_scale = cp.Parameter(n, nonneg=True)  # 1 / s_k
            self.snr_scaled = cp.Parameter(n, nonneg=True)  # q_k / s_k
            self.rate_unit = cp.Parameter(n, nonneg=True)  # r_k(a_k) / (a_k s_k)
            if self.wideband:
                rate_constraints = self._wideband_constraints(cp, x, z)
            else:
                rate_constraints = [self._cone_rate_constraint(cp, x, z)]
        else:  # a linear rate se_k b_k is x_k times its value at one unit
            rate_constraints = [z <= x]
        constraints = [
            *rate_constraints,
            # w_k >= 1 / z_k (epigraph of inv_pos of a concave rate): keeps the problem DPP,
            # since a Parameter may multiply a parameter-free expression only
            self.inverse_rate >= cp.inv_pos(z),
            self.fixed + cp.multiply(self.upload, self.inverse_rate) <= self.latency,
            self.unit @ x <= 1.0,
        ]
        self.problem = cp.Problem(cp.Minimize(self.latency), constraints)
        assert self.problem.is_dcp() and self.problem.is_dpp()

    def _cone_rate_constraint(self, cp, x, z, devices=None):
        """``rate_unit z_k <= r_k(a_k x_k) / (a_k s_k)`` in the exponential cone, for every
        device or those indexed by ``devices``."""
        inv_scale, snr_scaled, rate_unit = self.inv_scale, self.snr_scaled, self.rate_unit
        if devices is not None:
            inv_scale, snr_scaled = inv_scale[devices], snr_scaled[devices]
            rate_unit, x, z = rate_unit[devices], x[devices], z[devices]
        scaled = cp.multiply(inv_scale, x)
        rate = -cp.rel_entr(scaled, scaled + snr_scaled) / np.log(2.0)  # r_k / (a_k s_k)
        return cp.multiply(rate_unit, z) <= rate

    def _wideband_constraints(self, cp, x, z):
        """Rate constraints with the devices in ``wideband`` in the Pade form (class
        docstring) and the rest in the exponential cone; returns the constraint list."""
        wide = np.asarray(self.wideband)
        cone = np.setdiff1d(np.arange(self.n), wide)
        self.pade_rate_unit = cp.Parameter(wide.size, nonneg=True)  # ln(1 + q) / q
        self.pade_two_over_snr = cp.Parameter(wide.size, nonneg=True)  # 2 / q
        # r~(a x) ln 2 / (a q) = 1 - 1 / (1 + 2 x / q): one second-order cone (inv_pos)
        pade = 1 - cp.inv_pos(1 + cp.multiply(self.pade_two_over_snr, x[wide]))
        constraints = [cp.multiply(self.pade_rate_unit, z[wide]) <= pade]
        if cone.size:
            constraints.append(self._cone_rate_constraint(cp, x, z, cone))
        return constraints

    def solve(
        self,
        demand_mbit,
        gamma,
        fixed_time_s,
        budget_mhz,
        solver: str = "CLARABEL",
        scaling: int = 0,
        around=None,
    ):
        """Solve in scaled units (Mbit, MHz or bit/s/Hz, s, MHz); returns :class:`MinMaxSolution`.

        ``scaling`` indexes ``CONE_SCALINGS``: each device's bandwidth unit and cone scale
        (class docstring) and the options given to Clarabel. ``around`` (MHz [n], an earlier
        split) replaces the units by that split and the time unit by its latency. A solver
        error or a non-optimal status comes back in ``status``, never as an exception.
        """
        units, cone_exponent, clarabel_options = CONE_SCALINGS[scaling]
        demand = np.asarray(demand_mbit, dtype=float)
        channel = np.asarray(gamma, dtype=float)
        fixed_s = np.asarray(fixed_time_s, dtype=float)
        budget = float(budget_mhz)
        share = np.full(self.n, budget / self.n)
        t_ref = _slowest_latency_s(share, demand, channel, fixed_s, self.rate_model)
        if not np.isfinite(t_ref) or t_ref <= 0:
            t_ref = 1.0
        self.t_ref = t_ref  # the time unit of this solve (s): the equal-share latency
        unit = share
        if around is not None:  # re-centred on an earlier split: units and time at it
            around = np.asarray(around, dtype=float)
            unit = np.where(around > 0, around, share)
            t_ref = _slowest_latency_s(unit, demand, channel, fixed_s, self.rate_model)
            self.t_ref = t_ref
        elif units == "equal_latency":
            needed = _bandwidth_at_latency(t_ref, demand, channel, fixed_s, self.rate_model)
            unit = np.where(np.isfinite(needed) & (needed > 0), needed, share)
        if self.rate_model == "shannon":
            snr = channel / unit
            unit_rate = shannon_rate_bps(np.ones(self.n), snr)  # r_k(a_k) / a_k, bit/s/Hz
            scale = np.maximum(1.0, snr) ** cone_exponent
            self.inv_scale.value = 1.0 / scale
            self.snr_scaled.value = snr / scale
            self.rate_unit.value = unit_rate / scale
            if self.wideband:
                wide_snr = snr[list(self.wideband)]
                self.pade_rate_unit.value = np.log1p(wide_snr) / wide_snr
                self.pade_two_over_snr.value = 2.0 / wide_snr
        else:
            unit_rate = channel
        with np.errstate(divide="ignore", invalid="ignore"):
            upload_s = np.where(demand > 0, demand / (unit * unit_rate), 0.0)
        self.unit.value = unit / budget
        self.upload.value = np.where(np.isfinite(upload_s), upload_s, 0.0) / t_ref
        self.fixed.value = fixed_s / t_ref
        try:
            # warm_start=False: a reused Clarabel solver object makes the answer depend on the
            # previously solved rounds (measured on the joint problem, channels.joint_pruning)
            self.problem.solve(
                solver=solver,
                warm_start=False,
                ignore_dpp=self.n > DPP_MAX_DEVICES,
                **(clarabel_options if solver == "CLARABEL" else {}),
            )
        except self.cp.error.SolverError as exc:
            return MinMaxSolution(np.zeros(self.n), np.inf, f"solver_failed: {exc}".strip())
        status = self.problem.status
        if status not in ("optimal", "optimal_inaccurate") or self.share.value is None:
            return MinMaxSolution(np.zeros(self.n), np.inf, f"solver_failed: {status}")
        bandwidth = np.maximum(self.share.value, 0.0) * unit
        bandwidth *= budget / max(bandwidth.sum(), budget)  # interior-point slack: ~1e-9 over
        # Report what the split really achieves under the exact rate, not the solver's latency
        # variable: near rate saturation the latter carries slack while the split is right.
        # A split much worse than claimed means the solve went wrong.
        achieved = _slowest_latency_s(bandwidth, demand, channel, fixed_s, self.rate_model)
        claimed = float(np.asarray(self.latency.value)) * t_ref
        if not np.isfinite(achieved) or achieved > claimed * (1 + 1e-4) + 1e-12:
            return MinMaxSolution(
                bandwidth,
                np.inf,
                f"solver_failed: split achieves {achieved:.6g} s, solver claimed {claimed:.6g} s",
            )
        return MinMaxSolution(bandwidth, achieved, status)


@dataclass
class MinMaxLatency:
    """Allocator: minimise the slowest device's round latency.

    ``solver="cvxpy"`` solves the convex program (cached per cohort size); ``"bisection"`` uses
    the exact Lambert-W root search. A cvxpy split more than ``CERTIFY_REL`` slower than the
    exact optimum, or a failed solve, is retried with the next of ``CONE_SCALINGS`` (the
    status names the scaling that took, when not the first), then re-centred on the splits
    that missed, then with a power-limited bottleneck device in the Pade form (see
    :class:`MinMaxLatencyProblem`); if none gives a certified split, the round uses the exact
    result and says so in ``Allocation.status``. Devices with no usable channel get no
    bandwidth and are named in the status.
    """

    solver: Literal["cvxpy", "bisection"] = "cvxpy"
    cvxpy_solver: str = "CLARABEL"
    name: str = "minmax_latency"

    def __post_init__(self):
        self._problems: dict[int, MinMaxLatencyProblem] = {}
        # the last problem with a device in the Pade form (one only: which device it is varies
        # from round to round, and such rounds are rare)
        self._wideband_problem: MinMaxLatencyProblem | None = None

    def _problem(self, n: int, wideband: tuple[int, ...]) -> MinMaxLatencyProblem:
        if not wideband:
            if n not in self._problems:
                self._problems[n] = MinMaxLatencyProblem(n)
            return self._problems[n]
        last = self._wideband_problem
        if last is None or last.n != n or last.wideband != wideband:
            last = self._wideband_problem = MinMaxLatencyProblem(n, wideband=wideband)
        return last

    def _solve_certified(self, demand, gamma, fixed_s, budget):
        """cvxpy's split, certified against the exact root search; each failed or uncertified
        solve is retried with the next of ``CONE_SCALINGS``. When all of them miss, each split
        they produced is solved again in units of itself (``around``: x_k ~ 1 and T' ~ 1 at
        the optimum), in the same order; then, when one device is power-limited while it
        holds most of the band (:func:`wideband_bottleneck`), the scalings again with that
        device's rate in the Pade form. Returns (solution, exact)."""
        exact = minmax_latency_bisection(demand, gamma, fixed_s, budget)
        n_scalings = len(CONE_SCALINGS)
        missed: list[tuple[int, np.ndarray]] = []  # (scaling, split) of solves that missed
        first_failure = ""
        for scaling in range(n_scalings):
            sol = self._certified(demand, gamma, fixed_s, budget, scaling, exact)
            if not sol.status.startswith("solver_failed"):
                if scaling:  # say which scaling it took
                    sol = replace(sol, status=f"{sol.status} (cone scaling {scaling + 1} of "
                                              f"{n_scalings})")  # fmt: skip
                return sol, exact
            first_failure = first_failure or sol.status
            if sol.bandwidth_mhz.any():
                missed.append((scaling, sol.bandwidth_mhz))
        for scaling, split in missed:
            sol = self._certified(demand, gamma, fixed_s, budget, scaling, exact, around=split)
            if not sol.status.startswith("solver_failed"):
                status = f"{sol.status} (cone scaling {scaling + 1} of {n_scalings}, re-centred)"
                return replace(sol, status=status), exact
        tried = f"; all {n_scalings} cone scalings failed"
        if missed:
            tried += f", {len(missed)} re-centred too"
        # Tried last, so that every answer the exponential cone certifies stays as it was.
        wideband = wideband_bottleneck(demand, gamma, fixed_s, budget)
        if wideband:
            pade = f"device {wideband[0]} in the Pade form"
            for scaling in range(n_scalings):
                sol = self._certified(
                    demand, gamma, fixed_s, budget, scaling, exact, wideband=wideband
                )
                if not sol.status.startswith("solver_failed"):
                    status = f"{sol.status} (cone scaling {scaling + 1} of {n_scalings}, {pade})"
                    return replace(sol, status=status), exact
            tried += f", and with {pade}"
        return MinMaxSolution(sol.bandwidth_mhz, sol.latency_s, first_failure + tried), exact

    def _certified(self, demand, gamma, fixed_s, budget, scaling, exact, around=None,
                   wideband: tuple[int, ...] = ()):  # fmt: skip
        """One cvxpy solve; a split more than ``CERTIFY_REL`` slower than ``exact`` comes back
        as a failed solve, with its split."""
        sol = self._problem(demand.size, wideband).solve(
            demand, gamma, fixed_s, budget, self.cvxpy_solver, scaling=scaling, around=around
        )
        if not sol.status.startswith("solver_failed") and sol.latency_s > exact.latency_s * (
            1.0 + CERTIFY_REL
        ):
            # Clarabel can stop at "optimal" with a split 1e-5..1e-3 slower than the optimum
            # (random cohorts of 100 devices): certified against the exact root search, a few
            # ms, such a split is a failed solve, not the round's answer
            gap = sol.latency_s / exact.latency_s - 1.0
            sol = MinMaxSolution(
                sol.bandwidth_mhz,
                sol.latency_s,
                f"solver_failed: split achieves {sol.latency_s:.6g} s, {gap:.1e} above the"
                f" exact optimum {exact.latency_s:.6g} s",
            )
        return sol

    def allocate(self, *, demand_bits, gamma_hz, fixed_time_s, total_bandwidth_hz):
        started = time.perf_counter()
        demand = np.asarray(demand_bits, dtype=float) / MEGA
        gamma = np.asarray(gamma_hz, dtype=float) / MEGA
        fixed_s = np.asarray(fixed_time_s, dtype=float)
        budget = float(total_bandwidth_hz) / MEGA
        n = demand.size
        bw = np.zeros(n)
        status_prefix = ""
        exact: MinMaxSolution | None = None  # the root search's answer, when cvxpy is checked
        # 1. Devices that cannot upload at all get nothing; the rest share the band.
        unreachable = _split_unreachable(demand, gamma)
        active = (demand > 0) & ~unreachable
        if unreachable.any():
            status_prefix = f"unreachable: devices {np.flatnonzero(unreachable).tolist()}; "
        if budget <= 0 and active.any():
            sol = MinMaxSolution(np.zeros(int(active.sum())), np.inf, "no_bandwidth")
        elif not active.any():
            sol = MinMaxSolution(np.zeros(0), 0.0, "optimal")
        elif self.solver == "bisection":
            sol = minmax_latency_bisection(demand[active], gamma[active], fixed_s[active], budget)
        else:
            sol, exact = self._solve_certified(
                demand[active], gamma[active], fixed_s[active], budget
            )
        # 2. A failed solve never stops the run: fall back to the exact root search (same
        #    optimum, no solver) and say so in the status.
        status = status_prefix + sol.status
        if sol.status.startswith("solver_failed"):
            assert exact is not None, "only a cvxpy solve fails"
            sol = exact
            status += " -> bisection"
        bw[active] = sol.bandwidth_mhz
        bw_hz = bw * MEGA
        latency = predicted_latency_s(
            bw_hz,
            demand_bits=np.asarray(demand_bits, float),
            gamma_hz=np.asarray(gamma_hz, float),
            fixed_time_s=fixed_s,
        )
        return Allocation(
            bw_hz,
            status,
            float(latency.max()) if n else 0.0,
            time.perf_counter() - started,
        )


__all__ = [
    "EqualShare",
    "MinMaxLatency",
    "MinMaxLatencyProblem",
    "minmax_latency_bisection",
    "minmax_latency_fixed_se",
]
