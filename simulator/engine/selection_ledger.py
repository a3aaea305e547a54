"""The server's record of past rounds, and the view a selection policy gets from it.

The ledger holds only what a real server learns: who it selected, who delivered, how long
their round took, the losses they reported. :meth:`SelectionLedger.view` adds what it can
measure at the moment of selection (each online device's pilot, i.e. the uplink channel of the
coherence block in force then) and what devices announce (speed, data size, power). It never
reads the fading of later blocks, so a policy cannot see the future.
"""

from __future__ import annotations

import numpy as np

from channels.link import shannon_rate_bps
from devices.timing import compute_energy_j
from fl.protocol import per_member
from fl.selection.view import ServerView, jain_index
from simulator.engine.costs import LegCosts
from simulator.engine.world import World


class SelectionLedger:
    """Per-device history arrays [N] (see :class:`fl.selection.view.ServerView`)."""

    def __init__(self, num_devices: int):
        n = num_devices
        self.last_loss = np.full(n, np.nan)
        self.last_loss_sq = np.full(n, np.nan)
        self.last_samples = np.zeros(n, np.int64)
        self.last_duration_s = np.full(n, np.nan)
        self.last_selected_round = np.full(n, -1, np.int64)
        self.last_delivered_round = np.full(n, -1, np.int64)
        self.times_selected = np.zeros(n, np.int64)

    def selected(self, cohort: list[int], round_idx: int) -> None:
        self.times_selected[cohort] += 1
        self.last_selected_round[cohort] = round_idx

    def delivered(self, world: World, ids: list[int], round_idx: int, busy_s) -> None:
        """Devices that delivered this round: when, how long it took them (``busy_s`` [N], all
        stages), how many samples they trained on."""
        if not ids:
            return
        arr = np.asarray(ids, dtype=np.int64)
        self.last_delivered_round[arr] = round_idx
        self.last_duration_s[arr] = busy_s[arr]  # [n_devices] s spent this round
        self.last_samples[arr] = world.work.samples_processed(world.num_examples[arr])

    def reports(self, reports: dict[int, dict]) -> None:
        """Loss reports of the devices that trained (``train_loss``, ``train_loss_sq``)."""
        for d, metrics in reports.items():
            loss = metrics.get("train_loss", np.nan)
            self.last_loss[d] = loss
            self.last_loss_sq[d] = metrics.get("train_loss_sq", loss * loss)

    def jain_fairness(self) -> float:
        """Jain's index over how many times each device has been selected so far."""
        return jain_index(self.times_selected)

    def view(
        self, world: World, costs: LegCosts, round_idx: int, now_s: float, available: list[int]
    ) -> ServerView:
        """What the server knows at ``now_s`` when it selects among ``available``."""
        policy = world.selection
        assert policy is not None
        n = world.num_devices
        ids = np.asarray(available, dtype=np.int64)
        m = policy.size(ids.size)
        # what this round's protocol would ask of each online device (its legs' totals)
        protocol = world.strategy.round_protocol(global_state=world.global_state, cohort=ids)
        share = np.zeros(ids.size)
        bits = np.zeros(ids.size)
        for stage in protocol.stages:
            for leg in stage:
                if leg.kind == "compute":
                    share += per_member(leg.cycle_share, ids.size) + leg.prunable_share
                elif leg.kind == "uplink":
                    bits += per_member(leg.bits, ids.size) + leg.prunable_bits
        compute_s = np.full(n, np.nan)
        compute_s[ids] = costs.full_job_s[ids] * share
        uplink_bits = np.full(n, np.nan)
        uplink_bits[ids] = bits
        pop = world.population
        energy = np.full(n, np.nan)
        f = pop.cpu_hz[ids]
        energy[ids] = compute_energy_j(pop.kappa[ids], f * compute_s[ids], f)
        # the pilot: this coherence block's uplink SNR, at an equal share of the band
        rate = np.full(n, np.nan)
        if ids.size:
            gamma = costs.uplink_gamma_hz(ids, now_s)
            rate[ids] = shannon_rate_bps(costs.ul_band_hz / max(m, 1), gamma)
        return ServerView(
            round_idx=round_idx,
            now_s=now_s,
            available=ids,
            cohort_size=m,
            num_examples=world.num_examples,
            last_loss=self.last_loss,
            last_loss_sq=self.last_loss_sq,
            last_samples=self.last_samples,
            last_duration_s=self.last_duration_s,
            last_selected_round=self.last_selected_round,
            last_delivered_round=self.last_delivered_round,
            times_selected=self.times_selected,
            rate_bps=rate,
            compute_s=compute_s,
            uplink_bits=uplink_bits,
            compute_energy_j=energy,
            tx_power_w=np.asarray(costs.device_w, dtype=np.float64),
        )
