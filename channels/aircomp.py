"""Over-the-air computation (AirComp) on the uplink: who transmits, at what scale, for how long,
and the aggregate's error. Notes: papers/hierarchical_aircomp.md (Zhu, Wang, Huang, IEEE TWC
2020; Yang, Jiang, Shi, Ding, IEEE TWC 2020).

All transmitting devices send their normalised update at once over the whole band B; the
server receives ``y = sum_k h_k b_k x_k + z`` with noise power ``sigma^2 = N0 B`` per channel
use. Truncated channel inversion: device k transmits when its full-power receive SNR
``P_k g_k / (N0 B)`` is at least the threshold, with ``b_k = sqrt(rho0) / h_k``, so every
transmission arrives at power rho0. Our choice for rho0 (the notes leave it to the power
budget): the weakest transmitting device's full received power, ``rho0 = min_S P_k g_k``, so
nobody exceeds its power. The server estimates the (weighted) average as ``y / (|S|
sqrt(rho0))``, whose per-entry mean squared error for unit-variance entries is
``sigma^2 / (|S|^2 rho0)`` (perfect alignment).

The leg takes one analog transmission of the model: ``entries / (entries_per_symbol B)``
seconds, the same for 10 devices or 1,000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class AirCompRound:
    """One over-the-air uplink: ``transmitting`` [n] bool, ``rho0_w`` (received power of each
    transmission, W), ``noise_w`` (sigma^2 = N0 B, W), the leg's duration (s)."""

    transmitting: NDArray[np.bool_]
    rho0_w: float
    noise_w: float
    duration_s: float

    @property
    def excluded(self) -> int:
        return int((~self.transmitting).sum())

    def mse(self, transmitters: int) -> float:
        """Per-entry MSE of the estimated average of ``transmitters`` unit-variance updates,
        ``sigma^2 / (|S|^2 rho0)`` (nan for none)."""
        if transmitters <= 0 or not self.rho0_w > 0:
            return float("nan")
        return self.noise_w / (transmitters**2 * self.rho0_w)


def plan_aircomp(
    *,
    gamma_hz: NDArray[np.float64],
    tx_power_w: NDArray[np.float64],
    noise_psd_w_per_hz: float,
    band_hz: float,
    entries: float,
    entries_per_symbol: int,
    snr_threshold_db: float,
) -> AirCompRound:
    """The transmitting set and scale of one AirComp leg. ``gamma_hz`` [n]: each device's
    full-power SNR per Hz ``P g / N0``; ``entries``: model entries to send."""
    snr = gamma_hz / band_hz
    transmitting = snr >= 10.0 ** (snr_threshold_db / 10.0)
    received_w = gamma_hz * noise_psd_w_per_hz  # P_k g_k
    rho0 = float(received_w[transmitting].min()) if transmitting.any() else float("nan")
    return AirCompRound(
        transmitting=transmitting,
        rho0_w=rho0,
        noise_w=noise_psd_w_per_hz * band_hz,
        duration_s=entries / (entries_per_symbol * band_hz),
    )
