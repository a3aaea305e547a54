"""Conversions between decibel and linear units.

All functions accept scalars or numpy arrays and return the same shape.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def db_to_linear(value_db: ArrayLike) -> NDArray[np.float64]:
    """Power ratio in dB -> linear ratio (10 dB -> 10.0)."""
    return np.power(10.0, np.asarray(value_db, dtype=float) / 10.0)


def linear_to_db(ratio: ArrayLike) -> NDArray[np.float64]:
    """Linear power ratio -> dB (100.0 -> 20 dB). Zero maps to -inf."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(ratio, dtype=float))


def dbm_to_w(power_dbm: ArrayLike) -> NDArray[np.float64]:
    """Power in dBm -> watts (30 dBm -> 1.0 W)."""
    return db_to_linear(power_dbm) * 1e-3


def w_to_dbm(power_w: ArrayLike) -> NDArray[np.float64]:
    """Power in watts -> dBm (1.0 W -> 30 dBm)."""
    return linear_to_db(np.asarray(power_w, dtype=float) * 1e3)
