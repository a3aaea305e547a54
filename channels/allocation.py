"""Uplink spectrum allocation under FDMA: the common result type and the simple allocators.

Every allocator has the keyword-only signature
``allocate(*, demand_bits, gamma_hz, fixed_time_s, total_bandwidth_hz) -> Allocation``
where, per device k of the cohort, ``demand_bits[k]`` is the uplink payload, ``gamma_hz[k]`` the
SNR-per-Hz term ``p h / N0`` and ``fixed_time_s[k]`` the part of its round latency that does not
depend on uplink bandwidth (downlink + compute). Allocators never raise on bad channel input:
problems are reported in ``Allocation.status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

# Above this many devices the cvxpy problems (joint pruning P1, min-max latency) are
# canonicalised afresh at every solve instead of through their DPP compilation: DPP's
# parameter map grows as n^2 (P1: peak memory 518 MB at 500 devices, 1.7 GB at 1,000, 6.6 GB
# at 2,000) and its re-solves stop being faster (P1 per solve at 300 devices 59 ms with DPP vs
# 49 ms without; at 1,000, 181 vs 208 ms; min-max at 1,000: a 2.6 s compilation, then the same
# re-solve time either way).
DPP_MAX_DEVICES = 200


@dataclass(frozen=True)
class Allocation:
    """Result of one allocation.

    Attributes
    ----------
    bandwidth_hz : ndarray [n]
        Uplink bandwidth per device, Hz; non-negative, sums to at most the budget.
    status : str
        ``"optimal"`` or ``"heuristic"`` when all is well; otherwise a short reason such as
        ``"solver_failed: ... -> equal_share"`` or ``"unreachable: devices [3, 7]"``.
    latency_s : float
        The round latency the allocator predicts (max over devices), inf if unbounded.
    solve_time_s : float
        Wall time spent inside the allocator.
    """

    bandwidth_hz: NDArray[np.float64]
    status: str
    latency_s: float = float("nan")
    solve_time_s: float = 0.0
    details: dict = field(default_factory=dict)


class BandwidthAllocator(Protocol):
    @property
    def name(self) -> str: ...

    def allocate(
        self,
        *,
        demand_bits: NDArray[np.float64],
        gamma_hz: NDArray[np.float64],
        fixed_time_s: NDArray[np.float64],
        total_bandwidth_hz: float,
    ) -> Allocation: ...


def predicted_latency_s(bandwidth_hz, *, demand_bits, gamma_hz, fixed_time_s) -> NDArray:
    """Per-device ``fixed_time_s + demand_bits / rate``, ndarray [n] s (inf where rate is 0)."""
    from channels.link import shannon_rate_bps

    rate = shannon_rate_bps(bandwidth_hz, gamma_hz)
    with np.errstate(divide="ignore"):
        upload_s = np.where(demand_bits > 0, demand_bits / rate, 0.0)
    return fixed_time_s + upload_s


def _max_or_zero(values: NDArray) -> float:
    return float(np.max(values)) if values.size else 0.0


@dataclass(frozen=True)
class EqualShare:
    """``b_k = B / n`` for each of the n devices in the cohort."""

    name: str = "equal_share"

    def allocate(self, *, demand_bits, gamma_hz, fixed_time_s, total_bandwidth_hz):
        n = len(demand_bits)
        bw = np.full(n, total_bandwidth_hz / n) if n else np.zeros(0)
        lat = predicted_latency_s(
            bw, demand_bits=demand_bits, gamma_hz=gamma_hz, fixed_time_s=fixed_time_s
        )
        return Allocation(bw, "heuristic", _max_or_zero(lat))


@dataclass(frozen=True)
class ProportionalToDemand:
    """``b_k = B * S_k / sum(S)``: bandwidth in proportion to uplink payload bits."""

    name: str = "proportional"

    def allocate(self, *, demand_bits, gamma_hz, fixed_time_s, total_bandwidth_hz):
        demand = np.asarray(demand_bits, dtype=float)
        total = demand.sum()
        if demand.size == 0:
            return Allocation(np.zeros(0), "heuristic", 0.0)
        if total <= 0:
            # Nobody uploads anything: spread evenly rather than divide by zero.
            return EqualShare().allocate(
                demand_bits=demand_bits,
                gamma_hz=gamma_hz,
                fixed_time_s=fixed_time_s,
                total_bandwidth_hz=total_bandwidth_hz,
            )
        bw = total_bandwidth_hz * demand / total
        lat = predicted_latency_s(
            bw, demand_bits=demand_bits, gamma_hz=gamma_hz, fixed_time_s=fixed_time_s
        )
        return Allocation(bw, "heuristic", _max_or_zero(lat))
