"""Whether a device is online, and for how long it stays in its current state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Availability(Protocol):
    def initially_online(self, rng: np.random.Generator, *, device_id: int) -> bool: ...

    def next_change_s(
        self, rng: np.random.Generator, *, device_id: int, online: bool, now_s: float
    ) -> float:
        """Time from ``now_s`` until the device's state flips, s (inf: never)."""
        ...


@dataclass(frozen=True)
class AlwaysOn:
    """Never goes offline."""

    def initially_online(self, rng: np.random.Generator, *, device_id: int) -> bool:
        return True

    def next_change_s(self, rng, *, device_id: int, online: bool, now_s: float) -> float:
        return float("inf")


@dataclass(frozen=True)
class MarkovOnOff:
    """Two-state continuous-time Markov chain with exponential sojourn times.

    Starts in its stationary distribution: online with probability
    ``mean_online_s / (mean_online_s + mean_offline_s)``.
    """

    mean_online_s: float
    mean_offline_s: float

    @property
    def stationary_online_probability(self) -> float:
        return self.mean_online_s / (self.mean_online_s + self.mean_offline_s)

    def initially_online(self, rng: np.random.Generator, *, device_id: int) -> bool:
        return bool(rng.random() < self.stationary_online_probability)

    def next_change_s(self, rng, *, device_id: int, online: bool, now_s: float) -> float:
        return float(rng.exponential(self.mean_online_s if online else self.mean_offline_s))
