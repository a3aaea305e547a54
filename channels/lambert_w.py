"""The lower real branch of the Lambert W function, ``W_{-1}``, in numpy.

``W_{-1}(x)`` is the solution ``w <= -1`` of ``w e^w = x`` for ``-1/e <= x < 0``. The
closed-form bandwidth of a target Shannon rate (:mod:`channels.rate_inverse`) needs it on
every min-max allocation. ``scipy.special.lambertw`` computes the same thing, but importing
``scipy.special`` costs ~0.15 s, a tenth of a quickstart run's whole start-up; this is the same
method scipy uses (Halley's iteration from a series start), for the one branch we need.
It agrees with scipy to 1e-14 relative where the branch is well conditioned (tested), and
is more accurate next to the branch point -1/e, where scipy's answers stall near -1 (its
residual w e^w - x reaches 1e-9 there, ours stays at rounding): that is where the bandwidth of
a rate close to its ceiling gamma/ln2 is computed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

_INV_E = float(np.exp(-1.0))
_HALLEY_STEPS = 4  # cubic convergence: 3 steps reach machine precision from either start


def lambert_w_m1(x: ArrayLike) -> NDArray[np.float64]:
    """``W_{-1}(x)`` [n] for ``-1/e <= x < 0``; nan outside that domain, -inf at ``x = 0``.

    Start: near the branch point the series in ``p = -sqrt(2 (e x + 1))`` (Corless et al.,
    1996, eq. 4.22), ``w = -1 + p - p^2/3 + 11 p^3 / 72``; elsewhere the asymptotic
    ``L1 - L2 + L2 / L1`` with ``L1 = ln(-x)``, ``L2 = ln(-L1)``. Then a fixed number of
    Halley steps on ``f(w) = w e^w - x`` (a convergence test per step cost more than it saved).
    """
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, np.nan)
    inside = (x >= -_INV_E) & (x < 0.0)
    out[x == 0.0] = -np.inf
    if not inside.any():
        return out
    z = x[inside]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = -np.sqrt(np.maximum(2.0 * (np.e * z + 1.0), 0.0))
        near_branch = -1.0 + p * (1.0 + p * (-1.0 / 3.0 + p * (11.0 / 72.0)))
        l1 = np.log(-z)
        l2 = np.log(-l1)
        far = l1 - l2 + l2 / l1
    w = np.minimum(np.where(z < -0.25, near_branch, far), -1.0)
    for _ in range(_HALLEY_STEPS):
        ew = np.exp(w)
        f = w * ew - z
        wp1 = w + 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            step = f / (ew * wp1 - (w + 2.0) * f / (2.0 * wp1))
        # at the branch point itself (w = -1) f is 0 and the step 0/0: w stays put
        step[~np.isfinite(step)] = 0.0
        w = np.minimum(w - step, -1.0)
    out[inside] = w
    return out
