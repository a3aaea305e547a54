"""Round-time profiles: a device's whole job time drawn from its own normal distribution.

The alternative to the natural delay model (CPU + channel), for comparison with the OrthoFL
reference setup (papers/orthofl.md, section 7): each device gets one of a list of
(mean, std) profiles measured on Raspberry Pi devices running FL; every job's time is a fresh
draw from N(mean, std), and a draw <= 0 is replaced by the mean, as in the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (mean s, std s) of the nine device profiles in the OrthoFL reference code (notes, section 7).
RASPBERRY_PI_PROFILES_S: tuple[tuple[float, float], ...] = (
    (96.0, 136.0),
    (904.0, 222.0),
    (360.0, 103.0),
    (277.0, 187.0),
    (150.0, 210.0),
    (161.0, 194.0),
    (177.0, 210.0),
    (106.0, 33.0),
    (386.0, 112.0),
)


def assign_profiles(num_devices: int, num_profiles: int, rng: np.random.Generator) -> np.ndarray:
    """Profile index per device [n]: without replacement while there are enough profiles
    (so a small population sees distinct devices), with replacement beyond that."""
    return rng.choice(num_profiles, size=num_devices, replace=num_devices > num_profiles)


@dataclass(frozen=True)
class RoundTimeProfiles:
    """Per-device normal job times. ``mean_s``, ``std_s``: ndarray [n_devices] s."""

    mean_s: np.ndarray
    std_s: np.ndarray

    def job_time_s(self, device_ids: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Job times [n] s from standard normal draws ``z`` [n] (the caller keys them by
        device and job, so a device's k-th job takes the same time whatever else happens)."""
        ids = np.asarray(device_ids, dtype=np.int64)
        mean = self.mean_s[ids]
        t = mean + self.std_s[ids] * np.asarray(z)
        return np.where(t > 0.0, t, mean)
