"""What a server knows when it selects a round's cohort, and nothing more.

The simulator fills a :class:`ServerView` at the moment of selection. Past reports come from
devices that delivered (their training losses, how long their round took); the channel is the
pilot each online device sends at selection, i.e. the coherence block in force then. Nothing
here looks ahead: the fading during the round's own transfers, later availability and the
outcome of training are unknown to every policy.

Arrays are indexed by device id [N]; entries of devices never heard from are nan (losses,
durations) or -1 (rounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class ServerView:
    round_idx: int
    now_s: float
    available: NDArray[np.int64]  # online devices, sorted ids
    cohort_size: int  # m, from clients_per_round / fraction of the online devices
    num_examples: NDArray[np.int64]  # training examples per device (announced at join)
    last_loss: NDArray[np.float64]  # mean training loss of its last delivered round
    last_loss_sq: NDArray[np.float64]  # mean per-sample squared loss of that round
    last_samples: NDArray[np.int64]  # samples it trained on in that round (0: never)
    last_duration_s: NDArray[np.float64]  # how long its last delivered round took it
    last_selected_round: NDArray[np.int64]
    last_delivered_round: NDArray[np.int64]
    times_selected: NDArray[np.int64]
    rate_bps: NDArray[np.float64]  # uplink rate at an equal share of the band, from the pilot
    compute_s: NDArray[np.float64]  # predicted compute time of this round's protocol
    uplink_bits: NDArray[np.float64]  # bits this round's protocol asks it to send
    compute_energy_j: NDArray[np.float64]  # predicted compute energy of this round
    tx_power_w: NDArray[np.float64]

    @property
    def round_time_s(self) -> NDArray[np.float64]:
        """Estimated round time ``compute_s + uplink_bits / rate`` (inf where the rate is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            upload = np.where(self.uplink_bits > 0, self.uplink_bits / self.rate_bps, 0.0)
        return self.compute_s + upload

    @property
    def energy_j(self) -> NDArray[np.float64]:
        """Predicted energy of this round: compute plus transmit power x upload time."""
        with np.errstate(divide="ignore", invalid="ignore"):
            upload = np.where(self.uplink_bits > 0, self.uplink_bits / self.rate_bps, 0.0)
        return self.compute_energy_j + self.tx_power_w * upload


def jain_index(counts: NDArray) -> float:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)`` of participation counts (1: equal;
    1/n: one device does everything); 1 when nobody has taken part yet."""
    x = np.asarray(counts, dtype=np.float64)
    square_sum = float((x * x).sum())
    if square_sum == 0:
        return 1.0
    return float(x.sum() ** 2 / (x.size * square_sum))
