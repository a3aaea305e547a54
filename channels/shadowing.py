"""Log-normal shadowing: a per-link, time-invariant Gaussian offset in dB."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from channels.counter_rng import standard_normal, stream_id

_SHADOWING_STREAM = stream_id("shadowing")


@dataclass(frozen=True)
class Shadowing:
    """``shadowing_db = std_db * N(0, 1)``, a pure function of (seed, link).

    Large-scale and reciprocal, so uplink and downlink of one device share it.
    """

    std_db: float
    seed: int
    stream: int = _SHADOWING_STREAM  # device-to-device links use their own

    def offset_db(self, link_ids: ArrayLike) -> NDArray[np.float64]:
        """Shadowing offset, ndarray [n] dB (0 when ``std_db`` is 0)."""
        ids = np.asarray(link_ids)
        if self.std_db == 0.0:
            return np.zeros(ids.shape)
        return self.std_db * standard_normal(self.seed, self.stream, ids, -1)

    def tabulated(self, num_links: int) -> TabulatedShadowing:
        """The same offsets for links 0..num_links-1, drawn once and looked up afterwards
        (shadowing never changes, and one-device draws are dominated by numpy overhead)."""
        return TabulatedShadowing(self.offset_db(np.arange(num_links)))


@dataclass(frozen=True, eq=False)
class TabulatedShadowing:
    """Precomputed per-link offsets, ndarray [n] dB; identical values to :class:`Shadowing`."""

    table_db: NDArray[np.float64]

    def offset_db(self, link_ids: ArrayLike) -> NDArray[np.float64]:
        return self.table_db[np.asarray(link_ids)]
