"""Deterministic large-scale path loss models, ``loss_db(distance_m) -> dB``.

Shadowing (random, per link) lives in :mod:`channels.shadowing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

SPEED_OF_LIGHT_M_PER_S = 299_792_458.0


class PathLoss(Protocol):
    def loss_db(self, distance_m: ArrayLike) -> NDArray[np.float64]: ...


def _clamped(distance_m: ArrayLike, min_distance_m: float) -> NDArray[np.float64]:
    # Far-field models diverge at d -> 0; a device on top of the server is clamped.
    return np.maximum(np.asarray(distance_m, dtype=float), min_distance_m)


@dataclass(frozen=True)
class FreeSpace:
    """Friis free-space loss: ``20 log10(4 pi d f / c)`` dB."""

    carrier_hz: float
    min_distance_m: float = 1.0

    def loss_db(self, distance_m: ArrayLike) -> NDArray[np.float64]:
        d = _clamped(distance_m, self.min_distance_m)
        return 20.0 * np.log10(4.0 * np.pi * d * self.carrier_hz / SPEED_OF_LIGHT_M_PER_S)


@dataclass(frozen=True)
class LogDistance:
    """Log-distance law: ``ref_loss_db + 10 n log10(d / d0)`` dB."""

    exponent: float
    ref_distance_m: float = 1.0
    ref_loss_db: float = 40.0
    min_distance_m: float = 1.0

    def loss_db(self, distance_m: ArrayLike) -> NDArray[np.float64]:
        d = _clamped(distance_m, self.min_distance_m)
        return self.ref_loss_db + 10.0 * self.exponent * np.log10(d / self.ref_distance_m)


@dataclass(frozen=True)
class Macro3GPP:
    """3GPP-style macro-cell law ``128.1 + 37.6 log10(d_km)`` dB (TR 36.814 at 2 GHz)."""

    min_distance_m: float = 10.0

    def loss_db(self, distance_m: ArrayLike) -> NDArray[np.float64]:
        d_km = _clamped(distance_m, self.min_distance_m) / 1000.0
        return 128.1 + 37.6 * np.log10(d_km)
