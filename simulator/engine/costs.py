"""One cost model for both engines: how long every leg of a round protocol takes.

The synchronous server plans a stage for its cohort at the stage's start (channel of that
coherence block, one bandwidth allocation per uplink leg); the asynchronous server plans each
dispatched job with equal band slots. Both call :func:`plan_stage`, so a device in a given
coherence block gets the same leg times from either engine for the same slots.

Time model (DESIGN 4):

* downlink, ``unicast``: n sub-bands of ``B_dl / n`` at ``P_server / n`` each (n receivers, or
  the asynchronous slots); ``broadcast``: ``B_dl`` at ``P_server``, at the rate of the leg's
  weakest receiver;
* compute: ``full_job_s * (cycle_share + x * prunable_share)`` with ``full_job_s =
  cycles_per_sample * samples / cpu_hz`` and the kept fraction ``x = 1 - rho``;
* uplink: ``bits / rate`` at the band the allocator gives this leg, with each device's time
  until the leg starts as its fixed time (min-max); the joint allocator also picks rho;
* d2d: ``bits / rate`` on the pair's link, the D2D band shared equally by the leg's senders.

With round-time profiles (``devices.round_time``) a draw is the whole job: it replaces the
first compute leg of the first stage; every other leg takes no time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from channels.aircomp import AirCompRound, plan_aircomp
from channels.allocation import Allocation
from channels.cells import associate, interference_psd_w_per_hz
from channels.d2d import pair_distance_m, pair_ids
from channels.joint_pruning import JointPruningAllocator
from channels.link import shannon_rate_bps
from channels.units import dbm_to_w
from fl.protocol import Leg, RoundProtocol, per_member
from simulator.engine.world import World

ALLOCATION_OK = (
    "optimal", "heuristic", "no_pruning_needed", "equal_slots", "no_uplink", "over_the_air",
)  # fmt: skip


def transfer_s(bits, rate_bps: NDArray[np.float64]) -> NDArray[np.float64]:
    """``bits / rate`` [n] s: 0 for nothing to send, inf where the rate is 0."""
    bits = np.broadcast_to(np.asarray(bits, dtype=float), rate_bps.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bits > 0, np.where(rate_bps > 0, bits / rate_bps, np.inf), 0.0)


@dataclass(frozen=True)
class StagePlan:
    """Every leg's duration for the devices of one stage.

    Arrays are [n_legs, n] (legs in order, devices sorted by id): ``duration_s`` (0 where the
    device does not take part, inf where no rate serves it), ``active``, ``bits`` sent or
    received, ``bandwidth_hz`` (uplink, d2d and downlink legs; nan for compute). ``gamma_ul_hz``
    [n] is the uplink SNR per Hz (for a re-shared uplink), ``rho`` [n] the pruning ratios.
    """

    device_ids: NDArray[np.int64]
    legs: tuple[Leg, ...]
    duration_s: NDArray[np.float64]
    active: NDArray[np.bool_]
    bits: NDArray[np.float64]
    bandwidth_hz: NDArray[np.float64]
    gamma_ul_hz: NDArray[np.float64]
    rho: NDArray[np.float64]
    dropped: NDArray[np.bool_]
    allocation_status: str
    predicted_latency_s: float
    solve_time_s: float = 0.0
    t_max_s: float = math.nan
    certificate: dict = field(default_factory=dict)
    drop_reason: str = "infeasible"  # the failure reason of ``dropped`` devices
    aircomp: AirCompRound | None = None  # an over-the-air uplink leg's transmitting set

    @property
    def total_s(self) -> NDArray[np.float64]:
        return self.duration_s.sum(axis=0)


class LegCosts:
    """What does not change during a run, computed once per device: path loss x shadowing of
    both directions, transmit powers, a full local-training job's compute time. A plan then
    only draws fading (same arithmetic as ``Link.gamma_hz``, so bit-identical)."""

    def __init__(self, world: World):
        ch, pop = world.scenario.channel, world.population
        self.world = world
        self.cells = world.cells  # None: one server at the origin
        share = 1.0 if self.cells is None else self.cells.band_share
        self.cell_of = np.zeros(world.num_devices, dtype=np.int64)
        self.refresh_positions()
        self.server_w = float(dbm_to_w(ch.server_tx_power_dbm))
        self.device_w = dbm_to_w(pop.tx_power_dbm)
        samples = world.work.samples_processed(world.num_examples)
        self.full_job_s = pop.cycles_per_sample * samples / pop.cpu_hz
        self.broadcast = ch.downlink.mode == "broadcast"
        self.dl_band_hz = ch.downlink_bandwidth_hz * share  # a cell's band (all of it: one)
        self.ul_band_hz = ch.uplink_data_bandwidth_hz * share
        self.d2d_band_hz = ch.d2d_bandwidth_hz

    def refresh_positions(self) -> NDArray[np.int64]:
        """Path loss and shadowing at the devices' current positions (after they moved); with
        cells, the serving cell too. Returns the devices whose serving cell changed."""
        world, every = self.world, np.arange(self.world.num_devices)
        if self.cells is None:
            distance = world.population.distance_m
            self.static_dl = world.downlink.static_gain(link_ids=every, distance_m=distance)
            self.static_ul = world.uplink.static_gain(link_ids=every, distance_m=distance)
            return np.zeros(0, dtype=np.int64)
        d = self.cells.distances_m(world.population.position_m)  # [N, C]
        sites = range(self.cells.count)
        # [N, C] mean gains to every site: interference and association
        self.site_gain_ul = np.column_stack(
            [world.uplink.static_gain(link_ids=every, distance_m=d[:, c]) for c in sites]
        )
        self.site_gain_dl = np.column_stack(
            [world.downlink.static_gain(link_ids=every, distance_m=d[:, c]) for c in sites]
        )
        before = self.cell_of
        self.cell_of = associate(-10.0 * np.log10(self.site_gain_ul))
        self.static_ul = self.site_gain_ul[every, self.cell_of]
        self.static_dl = self.site_gain_dl[every, self.cell_of]
        return np.flatnonzero(before != self.cell_of)

    def uplink_noise_factor(self, ids) -> NDArray[np.float64]:
        """``N0 / (N0 + I0)`` at each transmitter's serving site [n], for the transmitters
        ``ids`` of one leg (1 without cells); multiplies the SNR per Hz into an SINR per Hz."""
        if self.cells is None:
            return np.ones(len(ids))
        n0 = self.world.uplink.noise_psd_w_per_hz
        psd = interference_psd_w_per_hz(
            rx_gain=self.site_gain_ul[ids], tx_power_w=self.device_w[ids],
            tx_cell=self.cell_of[ids], band_hz=self.ul_band_hz, reuse=self.cells.reuse,
        )  # fmt: skip
        return n0 / (n0 + psd[self.cell_of[ids]])

    def downlink_noise_factor(self, ids) -> NDArray[np.float64]:
        """``N0 / (N0 + I0)`` at each receiver [n]: the other sites with receivers in this leg
        transmit at the server power (reuse 1)."""
        assert self.cells is not None
        if self.cells.reuse != 1:
            return np.ones(len(ids))
        n0 = self.world.downlink.noise_psd_w_per_hz
        cell = self.cell_of[ids]
        active = np.bincount(cell, minlength=self.cells.count) > 0
        gains = self.site_gain_dl[ids]
        other = gains[:, active].sum(axis=1) - gains[np.arange(len(ids)), cell]
        return n0 / (n0 + self.server_w * other / self.dl_band_hz)

    def cell_downlink_s(self, ids, bits, t_s: float) -> tuple[NDArray, NDArray]:
        """Downlink durations [n] s and bands [n] Hz with cells: each site serves its own
        receivers on its band (unicast: an equal sub-band and power share each; broadcast:
        the whole band at its weakest receiver's rate), under the other sites' interference."""
        link, cell = self.world.downlink, self.cell_of[ids]
        counts = np.bincount(cell, minlength=self.cells.count)  # type: ignore[union-attr]
        factor = self.downlink_noise_factor(ids)
        if self.broadcast:
            gamma = factor * link.gamma_from_static_hz(
                static_gain=self.static_dl[ids], link_ids=ids, tx_power_w=self.server_w, t_s=t_s
            )
            weakest = np.full(counts.size, np.inf)
            np.minimum.at(weakest, cell, gamma)
            band = np.full(len(ids), self.dl_band_hz)
            return transfer_s(bits, shannon_rate_bps(band, weakest[cell])), band
        slots = counts[cell].astype(np.float64)
        gamma = factor * link.gamma_from_static_hz(
            static_gain=self.static_dl[ids], link_ids=ids, tx_power_w=self.server_w / slots,
            t_s=t_s,
        )  # fmt: skip
        band = self.dl_band_hz / slots
        return transfer_s(bits, shannon_rate_bps(band, gamma)), band

    def backhaul_s(self, ids, bits, cell_bits) -> tuple[NDArray, NDArray]:
        """A backhaul leg: durations [n] s (each cell's edge moves ``cell_bits`` plus its
        members' ``bits`` over its own backhaul; every member waits for its cell's transfer)
        and the bits counted per member [n] (its own plus its share of ``cell_bits``)."""
        assert self.cells is not None
        cell = self.cell_of[ids]
        per_member = np.broadcast_to(np.asarray(bits, dtype=np.float64), (len(ids),))
        members = np.bincount(cell, minlength=self.cells.count)
        load = np.bincount(cell, weights=per_member, minlength=self.cells.count) + cell_bits
        return self.cells.backhaul_s(load)[cell], per_member + cell_bits / members[cell]

    # --- one leg kind each -------------------------------------------------------------------
    def downlink_s(self, ids, bits, t_s: float, slots: int) -> tuple[NDArray, float]:
        """Downlink durations [n] s and the band each receiver uses, Hz."""
        link = self.world.downlink
        if self.broadcast:
            gain = link.gamma_from_static_hz(
                static_gain=self.static_dl[ids], link_ids=ids, tx_power_w=self.server_w, t_s=t_s
            )
            rate = shannon_rate_bps(self.dl_band_hz, np.array([gain.min()]))
            return transfer_s(bits, np.broadcast_to(rate, ids.shape)), self.dl_band_hz
        band = self.dl_band_hz / slots
        gamma = link.gamma_from_static_hz(
            static_gain=self.static_dl[ids], link_ids=ids, tx_power_w=self.server_w / slots, t_s=t_s
        )
        return transfer_s(bits, shannon_rate_bps(band, gamma)), band

    def slot_transfer_s(self, bits, gamma_hz, band_hz: float) -> NDArray[np.float64]:
        """``bits / rate`` on an equal slot of ``band_hz`` (one float band, so the Shannon
        helper's fast path); cheaper than :func:`transfer_s` for the per-dispatch path and
        identical for a positive payload."""
        if (type(bits) is float or np.ndim(bits) == 0) and bits <= 0:
            return np.zeros(np.shape(gamma_hz))
        rate = shannon_rate_bps(band_hz, gamma_hz)
        if rate.all():  # the usual case, without the cost of entering an errstate
            return bits / rate
        with np.errstate(divide="ignore"):  # gamma 0: rate 0, an infinite transfer
            return bits / rate

    def uplink_gamma_hz(self, ids, t_s: float) -> NDArray[np.float64]:
        return self.world.uplink.gamma_from_static_hz(
            static_gain=self.static_ul[ids], link_ids=ids, tx_power_w=self.device_w[ids], t_s=t_s
        )

    def d2d_s(self, senders, receivers, bits, t_s: float) -> tuple[NDArray, float]:
        """D2D durations [n] s for senders -> receivers sharing the D2D band equally."""
        link = self.world.d2d
        assert link is not None, "validated: d2d legs need channel.d2d"
        pos = self.world.population.position_m
        pairs = pair_ids(senders, receivers)
        gamma = link.gamma_hz(
            link_ids=pairs,
            distance_m=pair_distance_m(pos, senders, receivers),
            tx_power_dbm=self.world.population.tx_power_dbm[senders],
            t_s=t_s,
        )
        band = self.d2d_band_hz / max(len(senders), 1)
        return transfer_s(bits, shannon_rate_bps(band, gamma)), band


def plan_stage(
    world: World,
    costs: LegCosts,
    protocol: RoundProtocol,
    stage_idx: int,
    cohort: NDArray[np.int64],
    alive: NDArray[np.bool_],
    now_s: float,
    *,
    job_idx,
    slots: int | None = None,
) -> StagePlan:
    """Plan stage ``stage_idx`` of ``protocol`` for the ``alive`` members of ``cohort``.

    Parameters
    ----------
    cohort : device ids [m] the protocol was declared for (sorted)
    alive : bool [m], members still in the round (none failed an earlier stage)
    now_s : the stage's start; the channel is that of its coherence block
    job_idx : int or [n]: keys round-time profile draws (round index, or per-device job count)
    slots : asynchronous engine: equal band slots (band / slots, server power / slots);
        None: the synchronous engine (allocator per uplink leg, one sub-band per receiver)
    """
    legs = protocol.stages[stage_idx]
    ids = cohort[alive]
    if slots is not None and protocol.uniform_stages[stage_idx]:
        return _plan_equal_slots(world, costs, legs, ids, now_s, job_idx, slots, protocol)
    n, m = ids.size, cohort.size
    num_legs = len(legs)
    active = np.ones((num_legs, n), dtype=bool)
    for j, leg in enumerate(legs):
        if leg.participants is not None:
            active[j] = np.asarray(leg.participants, bool)[alive]
    fixed = np.zeros((num_legs, n))  # compute legs: the part pruning cannot shrink
    prunable = np.zeros((num_legs, n))  # compute legs: the part it can, at x = 1
    duration = np.zeros((num_legs, n))
    bits = np.zeros((num_legs, n))
    bandwidth = np.full((num_legs, n), np.nan)
    fixed_rho = protocol.fixed_rho
    rho = np.full(n, fixed_rho or 0.0)
    rho_known = fixed_rho is not None
    dropped = np.zeros(n, dtype=bool)
    gamma_ul = np.zeros(n)
    status, predicted, solve_s = "no_uplink", math.nan, 0.0
    extra: dict = {}
    aggregation = world.scenario.channel.aggregation
    aircomp = None
    elapsed_fixed = np.zeros(n)  # time until the current leg, excluding the prunable compute
    elapsed_prunable = np.zeros(n)  # prunable compute so far, at x = 1
    first_uplink = True
    for j, leg in enumerate(legs):
        sel = active[j]
        every = bool(sel.all())
        part = ids if every else ids[sel]
        at = slice(None) if every else sel  # plain slices are much cheaper than masks

        if leg.kind == "compute":
            full = costs.full_job_s[part]
            fixed[j, at] = full * _leg_values(leg.cycle_share, m, alive, sel)
            prunable[j, at] = full * leg.prunable_share
            elapsed_fixed[at] += fixed[j, at]
            elapsed_prunable[at] += prunable[j, at]
            continue
        leg_bits = _leg_values(leg.bits, m, alive, sel)
        if leg.kind == "backhaul":  # edge <-> cloud: no radio band
            d, leg_bits = costs.backhaul_s(part, leg_bits, leg.cell_bits)
            band = math.nan
        elif leg.kind == "downlink" and costs.cells is not None:
            d, cell_band = costs.cell_downlink_s(part, leg_bits, now_s)
            band = cell_band  # type: ignore[assignment]  # a band per receiver
        elif leg.kind == "downlink":
            d, band = costs.downlink_s(part, leg_bits, now_s, slots or part.size)
        elif leg.kind == "d2d":
            assert leg.receivers is not None
            receivers = np.asarray(leg.receivers, dtype=np.int64)[alive][sel]
            d, band = costs.d2d_s(part, receivers, leg_bits, now_s)
        elif aggregation.kind == "over_the_air":  # everyone at once on the whole band
            gamma = costs.uplink_gamma_hz(part, now_s)
            gamma_ul[at] = gamma
            entries = np.max(np.broadcast_to(leg_bits, part.shape)) / world.strategy.bits_per_param
            aircomp = plan_aircomp(
                gamma_hz=gamma, tx_power_w=costs.device_w[part],
                noise_psd_w_per_hz=world.uplink.noise_psd_w_per_hz, band_hz=costs.ul_band_hz,
                entries=float(entries), entries_per_symbol=aggregation.entries_per_symbol,
                snr_threshold_db=aggregation.snr_threshold_db,
            )  # fmt: skip
            d = np.where(aircomp.transmitting, aircomp.duration_s, np.inf)
            dropped[at] |= ~aircomp.transmitting
            band = costs.ul_band_hz
            status, predicted = "over_the_air", aircomp.duration_s
        else:  # uplink
            gamma = costs.uplink_gamma_hz(part, now_s)
            if costs.cells is not None:  # SINR per Hz under the other cells' transmitters
                gamma = gamma * costs.uplink_noise_factor(part)
            gamma_ul[at] = gamma
            uplink = _uplink if costs.cells is None else _uplink_per_cell
            alloc_status, d, band_k, leg_bits, rho_k, drop, more = uplink(
                world,
                costs,
                leg,
                part,
                np.broadcast_to(leg_bits, part.shape) if slots is None else leg_bits,
                gamma,
                elapsed_fixed[at],
                elapsed_prunable[at],
                None if not rho_known else rho[at],
                slots,
            )
            if not rho_known:
                rho[at], rho_known = rho_k, True
            dropped[at] |= drop
            band = band_k
            if first_uplink:
                status, predicted = alloc_status, more.pop("latency_s")
                solve_s, extra, first_uplink = more.pop("solve_time_s"), more, False
            else:
                solve_s += more.pop("solve_time_s")
                if alloc_status not in ALLOCATION_OK:
                    status = alloc_status
        duration[j, at] = d
        bits[j, at] = leg_bits
        bandwidth[j, at] = band
        elapsed_fixed[at] += d
    # compute legs: their time is known once rho is
    compute = np.array([leg.kind == "compute" for leg in legs])
    duration[compute] = fixed[compute] + (1.0 - rho) * prunable[compute]
    if world.round_time is not None:  # a profile draw is the whole job
        duration[:] = 0.0
        first_compute = np.flatnonzero(compute)
        if stage_idx == 0 and first_compute.size:
            duration[first_compute[0]] = world.profile_job_times_s(ids, job_idx)
    if dropped.any():
        duration[:, dropped] = np.where(active[:, dropped], np.inf, 0.0)
    if slots is not None:
        status = "equal_slots"
    return StagePlan(
        device_ids=ids,
        legs=legs,
        duration_s=duration,
        active=active,
        bits=bits,
        bandwidth_hz=bandwidth,
        gamma_ul_hz=gamma_ul,
        rho=rho,
        dropped=dropped,
        allocation_status=status,
        predicted_latency_s=predicted,
        solve_time_s=solve_s,
        drop_reason="below_threshold" if aircomp is not None else "infeasible",
        aircomp=aircomp,
        **extra,
    )


def _plan_equal_slots(world, costs, legs, ids, now_s, job_idx, slots, protocol) -> StagePlan:
    """:func:`plan_stage` for dispatched asynchronous jobs whose legs are the same for every
    device: the same arithmetic as the general path (so the same times to the last bit), with
    a few array operations instead of dozens; the asynchronous engine plans every dispatch."""
    n, num_legs = ids.size, len(legs)
    rho = np.full(n, protocol.fixed_rho or 0.0)
    duration = np.zeros((num_legs, n))
    bits = np.zeros((num_legs, n))
    bandwidth = np.full((num_legs, n), np.nan)
    gamma_ul = np.zeros(n)
    first_compute = -1
    for j, leg in enumerate(legs):
        if leg.kind == "compute":
            full = costs.full_job_s[ids]
            fixed = full * float(leg.cycle_share)
            duration[j] = fixed + (1.0 - rho) * (full * leg.prunable_share)
            first_compute = j if first_compute < 0 else first_compute
        elif leg.kind == "downlink":  # unicast slots (validated for the asynchronous engine)
            band = costs.dl_band_hz / slots
            gamma = world.downlink.gamma_from_static_hz(
                static_gain=costs.static_dl[ids], link_ids=ids,
                tx_power_w=costs.server_w / slots, t_s=now_s,
            )  # fmt: skip
            duration[j] = costs.slot_transfer_s(float(leg.bits), gamma, band)
            bits[j], bandwidth[j] = float(leg.bits), band
        else:  # uplink, equal slots
            gamma_ul = costs.uplink_gamma_hz(ids, now_s)
            leg_bits = float(leg.bits)
            if leg.prunable_bits:
                leg_bits = world.strategy.uplink_bits(global_state=world.global_state, rho=rho)
            band = costs.ul_band_hz / slots
            duration[j] = costs.slot_transfer_s(leg_bits, gamma_ul, band)
            bits[j], bandwidth[j] = leg_bits, band
    if world.round_time is not None:  # a profile draw is the whole job
        duration[:] = 0.0
        if first_compute >= 0:
            duration[first_compute] = world.profile_job_times_s(ids, job_idx)
    return StagePlan(
        device_ids=ids,
        legs=legs,
        duration_s=duration,
        active=np.ones((num_legs, n), dtype=bool),
        bits=bits,
        bandwidth_hz=bandwidth,
        gamma_ul_hz=gamma_ul,
        rho=rho,
        dropped=np.zeros(n, dtype=bool),
        allocation_status="equal_slots",
        predicted_latency_s=math.nan,
    )


def _leg_values(value, m: int, alive, sel):
    """A leg's per-member quantity for the devices taking part (a scalar stays a scalar)."""
    if np.ndim(value) == 0:
        return float(value)
    return per_member(value, m)[alive][sel]


def _uplink_per_cell(world, costs, leg, ids, bits, gamma, fixed_s, prunable_s, rho, slots):
    """:func:`_uplink` once per cell, each on its own band; the results in ``ids`` order.
    The round's status is the first cell's that is not OK (else the first's), its predicted
    latency the slowest cell's."""
    n = ids.size
    cell = costs.cell_of[ids]
    d, band, out_bits = np.zeros(n), np.zeros(n), np.zeros(n)
    out_rho, dropped = np.zeros(n), np.zeros(n, dtype=bool)
    status, more, worst = "", {"latency_s": -math.inf, "solve_time_s": 0.0}, -math.inf
    bits = np.broadcast_to(np.asarray(bits, dtype=np.float64), (n,))
    for c in np.unique(cell).tolist():
        at = cell == c
        got = _uplink(
            world, costs, leg, ids[at], bits[at], gamma[at], fixed_s[at], prunable_s[at],
            None if rho is None else rho[at], slots,
        )  # fmt: skip
        c_status, d[at], band[at], out_bits[at], out_rho[at], dropped[at], c_more = got
        if not status or (c_status not in ALLOCATION_OK and status in ALLOCATION_OK):
            status = c_status
        solve_s = more["solve_time_s"] + c_more.pop("solve_time_s")
        latency = c_more["latency_s"]
        if not latency <= worst:  # the slowest cell's extras (nan counts as slowest)
            worst, more = latency, c_more
        more["solve_time_s"] = solve_s
    return status, d, band, out_bits, out_rho, dropped, more


def _uplink(world, costs, leg, ids, bits, gamma, fixed_s, prunable_s, rho, slots):
    """One uplink leg: (status, durations [n], bandwidth [n] or Hz, bits [n], rho [n],
    dropped [n], {latency_s, solve_time_s, t_max_s?, certificate?})."""
    n = ids.size
    dropped = np.zeros(n, dtype=bool)
    strategy, state = world.strategy, world.global_state
    if slots is not None:  # asynchronous: equal fixed slots
        band = costs.ul_band_hz / slots
        rho = np.zeros(n) if rho is None else rho
        if leg.prunable_bits:
            bits = strategy.uplink_bits(global_state=state, rho=rho)
        d = costs.slot_transfer_s(bits, gamma, band)
        return (
            "equal_slots",
            d,
            band,
            bits,
            rho,
            dropped,
            {"latency_s": math.nan, "solve_time_s": 0.0},
        )
    allocator = world.allocator
    if rho is None and isinstance(allocator, JointPruningAllocator) and leg.prunable_bits:
        joint = allocator.allocate_joint(
            fixed_s=fixed_s,
            prunable_s=prunable_s,
            payload_bits=np.full(n, float(leg.prunable_bits)),
            gamma_hz=gamma,
            weights=np.ones(n),
            total_bandwidth_hz=costs.ul_band_hz,
            fixed_bits=np.broadcast_to(np.asarray(bits, dtype=float), (n,)),  # e.g. a bitmap
        )
        rho, band = joint.rho, joint.bandwidth_hz
        dropped[joint.dropped] = True
        bits = np.asarray(strategy.uplink_bits(global_state=state, rho=rho), dtype=float)
        more = {
            "latency_s": joint.latency_s,
            "solve_time_s": joint.solve_time_s,
            "t_max_s": joint.t_max_s,
            "certificate": joint.certificate,
        }
        status = joint.status
    else:
        rho = np.zeros(n) if rho is None else rho
        if leg.prunable_bits:
            bits = np.asarray(strategy.uplink_bits(global_state=state, rho=rho), dtype=float)
        alloc: Allocation = allocator.allocate(
            demand_bits=bits,
            gamma_hz=gamma,
            fixed_time_s=fixed_s + (1.0 - rho) * prunable_s,
            total_bandwidth_hz=costs.ul_band_hz,
        )
        band, status = alloc.bandwidth_hz, alloc.status
        more = {"latency_s": alloc.latency_s, "solve_time_s": alloc.solve_time_s}
    d = transfer_s(bits, shannon_rate_bps(band, gamma))
    return status, d, band, bits, rho, dropped, more
