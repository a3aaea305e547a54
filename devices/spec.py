"""Device facts (frozen), one device at a time or as a columnar population.

What changes during a run (online or not, the job in flight) lives in the simulator's run
context as arrays indexed by device id, which is what keeps 10^4-device runs fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class DeviceSpec:
    """Read-only facts about one device.

    Attributes
    ----------
    device_id : int
    cpu_hz : float            CPU frequency used for training, Hz.
    cycles_per_sample : float CPU cycles to process one training sample (forward + backward).
    tx_power_dbm : float      Uplink transmit power, dBm.
    position_m : (float, float) Position relative to the server, m.
    kappa : float             Effective switched capacitance; compute energy kappa*cycles*f^2.
    """

    device_id: int
    cpu_hz: float
    cycles_per_sample: float
    tx_power_dbm: float
    position_m: tuple[float, float]
    kappa: float

    @property
    def distance_m(self) -> float:
        return float(np.hypot(*self.position_m))


@dataclass(frozen=True)
class Population:
    """All devices as arrays indexed by device id (ids are 0..n-1), for vectorised maths.

    Attributes are ndarray [n]: ``cpu_hz``, ``cycles_per_sample``, ``tx_power_dbm``, ``kappa``;
    ``position_m`` is ndarray [n, 2].
    """

    cpu_hz: NDArray[np.float64]
    cycles_per_sample: NDArray[np.float64]
    tx_power_dbm: NDArray[np.float64]
    position_m: NDArray[np.float64]
    kappa: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.cpu_hz.size)

    @cached_property
    def distance_m(self) -> NDArray[np.float64]:
        """Distance to the server, ndarray [n] m (computed once: positions never change)."""
        return np.hypot(self.position_m[:, 0], self.position_m[:, 1])

    def spec(self, device_id: int) -> DeviceSpec:
        i = int(device_id)
        return DeviceSpec(
            device_id=i,
            cpu_hz=float(self.cpu_hz[i]),
            cycles_per_sample=float(self.cycles_per_sample[i]),
            tx_power_dbm=float(self.tx_power_dbm[i]),
            position_m=(float(self.position_m[i, 0]), float(self.position_m[i, 1])),
            kappa=float(self.kappa[i]),
        )
