"""How long device work takes and how much energy it costs (vectorised; scalars work too).

Time model (DESIGN section 4): compute ``cycles_per_sample * samples * kept_fraction / cpu_hz``;
compute energy ``kappa * cycles * cpu_hz^2``; transmit energy ``p_tx * t_up``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def compute_cycles(
    cycles_per_sample: ArrayLike, num_samples: ArrayLike, kept_fraction: ArrayLike = 1.0
) -> NDArray[np.float64]:
    """CPU cycles for ``num_samples`` samples through the kept fraction of the model."""
    return (
        np.asarray(cycles_per_sample, float)
        * np.asarray(num_samples, float)
        * np.asarray(kept_fraction, float)
    )


def train_time_s(
    cpu_hz: ArrayLike,
    cycles_per_sample: ArrayLike,
    num_samples: ArrayLike,
    kept_fraction: ArrayLike = 1.0,
) -> NDArray[np.float64]:
    """Local training time, s: ``cycles_per_sample * num_samples * kept_fraction / cpu_hz``."""
    return compute_cycles(cycles_per_sample, num_samples, kept_fraction) / np.asarray(cpu_hz, float)


def compute_energy_j(kappa: ArrayLike, cycles: ArrayLike, cpu_hz: ArrayLike) -> NDArray[np.float64]:
    """Dynamic CPU energy, J: ``kappa * cycles * cpu_hz^2``."""
    f = np.asarray(cpu_hz, float)
    return np.asarray(kappa, float) * np.asarray(cycles, float) * f * f


def tx_energy_j(tx_power_w: ArrayLike, duration_s: ArrayLike) -> NDArray[np.float64]:
    """Radio energy, J: ``p_tx * t`` (power in watts; the simulator converts from dBm)."""
    return np.asarray(tx_power_w, float) * np.asarray(duration_s, float)
