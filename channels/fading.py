"""Block fading: small-scale power gain, constant within a coherence block.

``power_gain(link_ids, t_s)`` is a pure function of (seed, stream, link, block) with
``block = floor(t_s / coherence_s)``; mean power gain is 1 for every model, so fading never
changes the average SNR, only its spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from channels.counter_rng import standard_normal, uniform01


class FadingModel(Protocol):
    def power_gain(self, link_ids: ArrayLike, t_s: float) -> NDArray[np.float64]: ...

    def block_of(self, t_s: float) -> int:
        """The coherence block of ``t_s``: gains drawn at two times of one block are equal."""
        ...


@dataclass(frozen=True)
class NoFading:
    """Unit gain on every link."""

    def power_gain(self, link_ids: ArrayLike, t_s: float) -> NDArray[np.float64]:
        return np.ones(np.asarray(link_ids).shape)

    def block_of(self, t_s: float) -> int:
        return 0  # one block for all time


@dataclass(frozen=True)
class RayleighFading:
    """``|h|^2 ~ Exp(1)``: no line of sight. Drawn by inversion, ``-ln(U)``."""

    seed: int
    stream: int
    coherence_s: float

    def block_of(self, t_s: float) -> int:
        return int(np.floor(t_s / self.coherence_s))

    def power_gain(self, link_ids: ArrayLike, t_s: float) -> NDArray[np.float64]:
        block = self.block_of(t_s)
        return -np.log(uniform01(self.seed, self.stream, link_ids, block))


@dataclass(frozen=True)
class RicianFading:
    """``h = sqrt(K/(K+1)) + sqrt(1/(K+1)) CN(0, 1)``; ``E|h|^2 = 1``. K = 0 is Rayleigh."""

    seed: int
    stream: int
    coherence_s: float
    k_factor: float

    def block_of(self, t_s: float) -> int:
        return int(np.floor(t_s / self.coherence_s))

    def power_gain(self, link_ids: ArrayLike, t_s: float) -> NDArray[np.float64]:
        block = self.block_of(t_s)
        los = np.sqrt(self.k_factor / (self.k_factor + 1.0))
        scatter = np.sqrt(1.0 / (2.0 * (self.k_factor + 1.0)))  # per real dimension
        re = los + scatter * standard_normal(self.seed, self.stream, link_ids, block, pair=0)
        im = scatter * standard_normal(self.seed, self.stream, link_ids, block, pair=1)
        return re * re + im * im
