"""Bandwidth needed to reach a target Shannon rate, in closed form via Lambert W.

Solves ``b log2(1 + gamma / b) = R`` for b. With ``c = R ln2 / gamma`` (must be < 1: the rate
saturates at ``gamma / ln 2`` as b -> inf) the solution is ``b = gamma / s`` with
``s = -W_{-1}(-c e^{-c}) / c - 1``; the principal branch W_0 gives the trivial root s = 0.
(Derivation: put z = 1 + gamma/b, then ln z = c (z - 1), i.e. -cz e^{-cz} = -c e^{-c}.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from channels.lambert_w import lambert_w_m1


def bandwidth_for_rate(rate: ArrayLike, gamma: ArrayLike) -> NDArray[np.float64]:
    """Smallest bandwidth whose Shannon rate equals ``rate``.

    Parameters
    ----------
    rate : array_like [n]
        Target rate, bit/s (or Mbit/s if ``gamma`` is in MHz; units just need to agree).
    gamma : array_like [n]
        ``p h / N0`` in Hz (or MHz).

    Returns
    -------
    bandwidth : ndarray [n]
        Same unit as ``gamma``; 0 where rate <= 0, inf where the rate is unreachable
        (``rate >= gamma / ln 2`` or gamma <= 0).
    """
    r = np.asarray(rate, dtype=float)
    g = np.asarray(gamma, dtype=float)
    r, g = np.broadcast_arrays(r, g)
    out = np.full(r.shape, np.inf)
    out[r <= 0] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        c = r * np.log(2.0) / g
    ok = (r > 0) & (g > 0) & (c < 1.0)
    if np.any(ok):
        cc = c[ok]
        w = lambert_w_m1(-cc * np.exp(-cc))
        s = -w / cc - 1.0
        out[ok] = np.where(s > 0, g[ok] / s, np.inf)
    return out
