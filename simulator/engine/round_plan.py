"""Per-round timing of a synchronous cohort: channels, bandwidth (and pruning), phase durations.

Vectorised over the cohort. The channel a round sees is the coherence block it starts in: the
server allocates from the channel state at the round start, and the transfers use that state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from channels.allocation import Allocation
from channels.joint_pruning import JointPruningAllocator
from channels.link import shannon_rate_bps
from simulator.engine.world import World


@dataclass(frozen=True)
class RoundPlan:
    """Durations per cohort member, ndarray [n] s, and the allocation that produced them.

    ``rho`` [n] is each device's pruning ratio this round (0 without pruning); ``dropped``
    marks devices the joint allocator left out of an infeasible round.
    """

    device_ids: np.ndarray
    downlink_s: np.ndarray
    compute_s: np.ndarray
    uplink_s: np.ndarray
    uplink_bandwidth_hz: np.ndarray
    rho: np.ndarray
    uplink_bits: np.ndarray
    bits_down: int
    allocation_status: str
    predicted_latency_s: float
    solve_time_s: float
    dropped: np.ndarray
    t_max_s: float = float("nan")
    certificate: dict = field(default_factory=dict)

    @property
    def total_s(self) -> np.ndarray:
        return self.downlink_s + self.compute_s + self.uplink_s


def _transfer_s(bits, rate_bps: np.ndarray) -> np.ndarray:
    bits = np.broadcast_to(np.asarray(bits, dtype=float), rate_bps.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bits > 0, np.where(rate_bps > 0, bits / rate_bps, np.inf), 0.0)


def plan_round(world: World, cohort: list[int], now_s: float, round_idx: int = 0) -> RoundPlan:
    """Compute every phase duration of a synchronous round starting at ``now_s``.

    1. downlink: the server splits the downlink band equally (FDMA) at its own power;
    2. compute: ``cycles_per_sample * samples * (fixed share + x * prunable share) / cpu_hz``
       with the kept fraction ``x = 1 - rho`` (the strategy's :class:`RoundWork`);
    3. uplink: the allocator shares the uplink band knowing payloads, channels and each
       device's downlink + compute time; the joint allocator also chooses ``rho``.

    With round-time profiles (``devices.round_time``) a draw for ``round_idx`` replaces the
    three phases (held as compute time).
    """
    ch = world.scenario.channel
    pop = world.population
    ids = np.asarray(cohort, dtype=np.int64)
    dist = pop.distance_m[ids]
    work = world.strategy.round_work(global_state=world.global_state)
    # 1. downlink
    gamma_dl = world.downlink.gamma_hz(
        link_ids=ids, distance_m=dist, tx_power_dbm=ch.server_tx_power_dbm, t_s=now_s
    )
    dl_rate = shannon_rate_bps(np.full(ids.size, ch.downlink_bandwidth_hz / ids.size), gamma_dl)
    downlink_s = _transfer_s(work.downlink_bits, dl_rate)
    # 2. compute, split into what pruning can and cannot shrink
    samples = world.work.samples_processed(world.num_examples[ids])
    full_s = pop.cycles_per_sample[ids] * samples / pop.cpu_hz[ids]
    fixed_compute_s = full_s * work.fixed_cycle_share
    prunable_s = full_s * work.prunable_cycle_share
    # 3. uplink (and pruning)
    gamma_ul = world.uplink.gamma_hz(
        link_ids=ids, distance_m=dist, tx_power_dbm=pop.tx_power_dbm[ids], t_s=now_s
    )
    dropped = np.zeros(ids.size, dtype=bool)
    extra: dict = {}
    if isinstance(world.allocator, JointPruningAllocator):
        joint = world.allocator.allocate_joint(
            fixed_s=downlink_s + fixed_compute_s,
            prunable_s=prunable_s,
            payload_bits=np.full(ids.size, float(work.prunable_uplink_bits_full)),
            gamma_hz=gamma_ul,
            weights=np.ones(ids.size),
            total_bandwidth_hz=ch.uplink_bandwidth_hz,
        )
        rho, bandwidth = joint.rho, joint.bandwidth_hz
        bits = world.strategy.uplink_bits(global_state=world.global_state, rho=rho)
        dropped[joint.dropped] = True
        status, predicted, solve_s = joint.status, joint.latency_s, joint.solve_time_s
        extra = {"t_max_s": joint.t_max_s, "certificate": joint.certificate}
    else:
        rho = np.full(ids.size, work.fixed_rho or 0.0)
        bits = world.strategy.uplink_bits(global_state=world.global_state, rho=rho)
        alloc: Allocation = world.allocator.allocate(
            demand_bits=bits,
            gamma_hz=gamma_ul,
            fixed_time_s=downlink_s + fixed_compute_s + (1.0 - rho) * prunable_s,
            total_bandwidth_hz=ch.uplink_bandwidth_hz,
        )
        bandwidth, status = alloc.bandwidth_hz, alloc.status
        predicted, solve_s = alloc.latency_s, alloc.solve_time_s
    uplink_s = _transfer_s(bits, shannon_rate_bps(bandwidth, gamma_ul))
    uplink_s = np.where(dropped, np.inf, uplink_s)
    compute_s = fixed_compute_s + (1.0 - rho) * prunable_s
    if world.round_time is not None:  # profile draws replace the whole job time
        compute_s = world.profile_job_times_s(ids, round_idx)
        downlink_s = np.zeros(ids.size)
        uplink_s = np.where(dropped, np.inf, 0.0)
    return RoundPlan(
        device_ids=ids,
        downlink_s=downlink_s,
        compute_s=compute_s,
        uplink_s=uplink_s,
        uplink_bandwidth_hz=bandwidth,
        rho=rho,
        uplink_bits=np.asarray(bits, dtype=float),
        bits_down=work.downlink_bits,
        allocation_status=status,
        predicted_latency_s=predicted,
        solve_time_s=solve_s,
        dropped=dropped,
        **extra,
    )
