"""Device-to-device links: pair identities and distances between device positions.

A D2D link is keyed by the unordered pair of its end points, so shadowing (large-scale,
reciprocal) is the same in both directions and fading is a pure function of (seed, pair,
coherence block), like the server links' fading of (seed, device, block).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

_PAIR_SHIFT = np.int64(2**31)


def pair_ids(a: ArrayLike, b: ArrayLike) -> NDArray[np.int64]:
    """Link id of the unordered device pairs (a, b), ndarray [n] int64: ``min * 2^31 + max``
    (unique for device ids below 2^31)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    return np.minimum(a, b) * _PAIR_SHIFT + np.maximum(a, b)


def pair_distance_m(position_m: NDArray[np.float64], a: ArrayLike, b: ArrayLike):
    """Distance between devices a and b, ndarray [n] m (``position_m`` [n_devices, 2])."""
    pa = position_m[np.asarray(a, dtype=np.int64)]
    pb = position_m[np.asarray(b, dtype=np.int64)]
    return np.hypot(pa[:, 0] - pb[:, 0], pa[:, 1] - pb[:, 1])
