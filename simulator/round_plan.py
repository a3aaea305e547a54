"""Per-round timing of a synchronous cohort: channels, bandwidth allocation, phase durations.

Vectorised over the cohort. The channel a round sees is the coherence block it starts in: the
server allocates bandwidth from the channel state at the round start, and the transfers use
that same state (block fading per round).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from channels.allocation import Allocation
from channels.link import shannon_rate_bps
from devices.timing import train_time_s
from simulator.world import World


@dataclass(frozen=True)
class RoundPlan:
    """Durations per cohort member, ndarray [n] s, and the allocation that produced them."""

    device_ids: np.ndarray
    downlink_s: np.ndarray
    compute_s: np.ndarray
    uplink_s: np.ndarray
    uplink_bandwidth_hz: np.ndarray
    bits_down: int
    bits_up: int
    allocation: Allocation

    @property
    def total_s(self) -> np.ndarray:
        return self.downlink_s + self.compute_s + self.uplink_s


def _transfer_s(bits: float, rate_bps: np.ndarray) -> np.ndarray:
    if bits <= 0:
        return np.zeros_like(rate_bps)
    with np.errstate(divide="ignore"):
        return np.where(rate_bps > 0, bits / rate_bps, np.inf)


def plan_round(world: World, cohort: list[int], now_s: float) -> RoundPlan:
    """Compute every phase duration of a synchronous round starting at ``now_s``.

    1. downlink: the server splits the downlink band equally (FDMA) at its own power;
    2. compute: ``cycles_per_sample * samples / cpu_hz``;
    3. uplink: the configured allocator shares the uplink band, knowing each device's
       downlink + compute time, payload and channel.
    """
    ch = world.scenario.channel
    pop = world.population
    ids = np.asarray(cohort, dtype=np.int64)
    dist = pop.distance_m[ids]
    bits_down = world.strategy.downlink_bits(global_state=world.global_state)
    bits_up = world.strategy.uplink_bits(global_state=world.global_state)
    # 1. downlink
    gamma_dl = world.downlink.gamma_hz(
        link_ids=ids, distance_m=dist, tx_power_dbm=ch.server_tx_power_dbm, t_s=now_s
    )
    dl_rate = shannon_rate_bps(np.full(ids.size, ch.downlink_bandwidth_hz / ids.size), gamma_dl)
    downlink_s = _transfer_s(bits_down, dl_rate)
    # 2. compute
    samples = world.work.samples_processed(world.num_examples[ids])
    compute_s = train_time_s(pop.cpu_hz[ids], pop.cycles_per_sample[ids], samples)
    # 3. uplink
    gamma_ul = world.uplink.gamma_hz(
        link_ids=ids, distance_m=dist, tx_power_dbm=pop.tx_power_dbm[ids], t_s=now_s
    )
    allocation = world.allocator.allocate(
        demand_bits=np.full(ids.size, float(bits_up)),
        gamma_hz=gamma_ul,
        fixed_time_s=downlink_s + compute_s,
        total_bandwidth_hz=ch.uplink_bandwidth_hz,
    )
    uplink_s = _transfer_s(bits_up, shannon_rate_bps(allocation.bandwidth_hz, gamma_ul))
    return RoundPlan(
        device_ids=ids,
        downlink_s=downlink_s,
        compute_s=compute_s,
        uplink_s=uplink_s,
        uplink_bandwidth_hz=allocation.bandwidth_hz,
        bits_down=bits_down,
        bits_up=bits_up,
        allocation=allocation,
    )
