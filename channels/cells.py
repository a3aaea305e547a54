"""Cells: base-station sites, which cell serves each device, and inter-cell interference.

Notes: papers/hierarchical_aircomp.md. Our modelling choices (standard system-level practice):

* **Layout.** Hex sites at ``ISD (q + r/2, r sqrt(3)/2)`` for axial coordinates (q, r): the
  centre first, then ring after ring (ring k starts at (-k, k) and walks the six directions),
  so the first ring's six sites lie at distance ISD.
* **Association.** The cell a device receives strongest: the smallest path loss. Shadowing is
  a property of the device's surroundings (one offset per device, the same towards every
  site), so it does not change which cell is strongest. Ties go to the smaller cell index.
  Re-evaluated whenever devices move (coherence-block boundaries).
* **Interference (reuse 1).** Every cell uses the whole band. A transmitter's power lands, on
  average, evenly across the band, so the co-channel transmitters of the other cells add a
  power spectral density ``I0_c = sum_{j not in c} p_j g_jc / B`` at cell c's receiver (g
  without fading: path loss and shadowing), and a device's SINR on a sub-band b is
  ``p g / ((N0 + I0) b)``. The transmitters counted are those taking part in the same leg
  (a fluid average over who happens to share a sub-band). The downlink is the same with the
  other sites transmitting at the server power to their own receivers.
* **Reuse 3.** Each cell gets a third of each band and no interference (the interference-free
  reference of the notes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

HEX_DIRECTIONS = ((1, 0), (1, -1), (0, -1), (-1, 0), (-1, 1), (0, 1))


def hex_axial(count: int) -> list[tuple[int, int]]:
    """The first ``count`` hexagons (q, r): the centre, then each ring in order."""
    cells = [(0, 0)]
    ring = 1
    while len(cells) < count:
        q, r = -ring, ring  # ring k starts k steps in direction 4 from the centre
        for dq, dr in HEX_DIRECTIONS:
            for _ in range(ring):
                cells.append((q, r))
                q, r = q + dq, r + dr
        ring += 1
    return cells[:count]


def hex_positions_m(count: int, isd_m: float) -> NDArray[np.float64]:
    """Site positions [count, 2] m on a hex grid of inter-site distance ``isd_m``."""
    axial = np.array(hex_axial(count), dtype=np.float64)
    q, r = axial[:, 0], axial[:, 1]
    return np.column_stack([isd_m * (q + r / 2.0), isd_m * r * math.sqrt(3.0) / 2.0])


@dataclass(frozen=True)
class Cells:
    """Sites and radio settings of a multi-cell network."""

    position_m: NDArray[np.float64]  # [C, 2]
    reuse: int
    backhaul_bps: float
    backhaul_latency_s: float
    handover: str  # "fail" | "finish_old"

    @property
    def count(self) -> int:
        return len(self.position_m)

    @property
    def band_share(self) -> float:
        """The share of each band a cell uses: 1 (reuse 1) or 1/3."""
        return 1.0 if self.reuse == 1 else 1.0 / 3.0

    def distances_m(self, device_position_m: NDArray[np.float64]) -> NDArray[np.float64]:
        """Distance of every device to every site, [N, C] m."""
        d = device_position_m[:, None, :] - self.position_m[None, :, :]
        return np.hypot(d[..., 0], d[..., 1])

    def backhaul_s(self, bits) -> NDArray[np.float64]:
        """Time to move ``bits`` over one edge's backhaul: latency + bits / rate, s."""
        bits = np.asarray(bits, dtype=np.float64)
        return np.where(bits > 0, self.backhaul_latency_s + bits / self.backhaul_bps, 0.0)


def make_cells(cfg) -> Cells | None:
    """The ``cells`` section as :class:`Cells` (None without one)."""
    if cfg is None:
        return None
    if cfg.layout == "hex":
        position = hex_positions_m(cfg.count, cfg.isd_m)
    else:
        position = np.asarray(cfg.positions_m, dtype=np.float64).reshape(cfg.count, 2)
    return Cells(position, cfg.reuse, cfg.backhaul_bps, cfg.backhaul_latency_s, cfg.handover)


def associate(loss_db: NDArray[np.float64]) -> NDArray[np.int64]:
    """The serving cell of each device from its path loss to every site [N, C] dB: the
    smallest loss (strongest received power), ties to the smaller index."""
    return np.argmin(loss_db, axis=1).astype(np.int64)


def interference_psd_w_per_hz(
    *,
    rx_gain: NDArray[np.float64],
    tx_power_w: NDArray[np.float64],
    tx_cell: NDArray[np.int64],
    band_hz: float,
    reuse: int,
) -> NDArray[np.float64]:
    """Mean co-channel interference PSD at each site [C], W/Hz.

    ``rx_gain`` [n, C]: the mean gain from each transmitter to each site; ``tx_power_w`` [n];
    ``tx_cell`` [n]: the cell each transmitter belongs to (its own site does not count it).
    ``I0_c = sum_{j: cell j != c} p_j g_jc / B``; all zero with reuse 3.
    """
    cells = rx_gain.shape[1]
    if reuse != 1 or tx_power_w.size == 0:
        return np.zeros(cells)
    received = tx_power_w[:, None] * rx_gain  # [n, C]
    total = received.sum(axis=0)
    own = np.bincount(tx_cell, weights=received[np.arange(tx_cell.size), tx_cell], minlength=cells)
    return (total - own) / band_hz
