"""Per-device counters of a run: jobs, delivered updates, failures, busy, offline and idle
time, bits sent and received. Written as ``devices.parquet`` (one row per device) next to the
device's static parameters, so that any round can be recomputed by hand from the table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from simulator.engine import arrow_columns


class DeviceStats:
    """Column arrays [n_devices], updated by the SimPy processes as jobs end."""

    def __init__(self, num_devices: int):
        n = num_devices
        self.jobs = np.zeros(n, dtype=np.int64)
        self.updates = np.zeros(n, dtype=np.int64)  # delivered (uploaded) jobs
        self.failures = np.zeros(n, dtype=np.int64)
        self.busy_s = np.zeros(n)  # downloading, computing or uploading
        self.offline_s = np.zeros(n)
        self.bits_up = np.zeros(n, dtype=np.int64)
        self.bits_down = np.zeros(n, dtype=np.int64)
        self.bits_d2d = np.zeros(n, dtype=np.int64)
        self._offline_since = np.full(n, np.nan)

    def went_offline(self, device_id: int, now_s: float) -> None:
        self._offline_since[device_id] = now_s

    def came_online(self, device_id: int, now_s: float) -> None:
        self.offline_s[device_id] += now_s - self._offline_since[device_id]
        self._offline_since[device_id] = np.nan

    def table(self, end_s: float, static: dict | None = None) -> pa.Table:
        """The counters at the run's end; ``idle_s`` = online and not working. ``static``:
        columns [n] of the devices' fixed parameters, placed after ``device_id``."""
        open_offline = np.where(np.isnan(self._offline_since), 0.0, end_s - self._offline_since)
        offline = self.offline_s + open_offline
        columns = {
            "device_id": np.arange(self.jobs.size),
            **(static or {}),
            "jobs": self.jobs,
            "updates": self.updates,
            "failures": self.failures,
            "busy_s": self.busy_s,
            "offline_s": offline,
            "idle_s": np.maximum(end_s - self.busy_s - offline, 0.0),
            "bits_up": self.bits_up,
            "bits_down": self.bits_down,
            "bits_d2d": self.bits_d2d,
        }
        return pa.table({k: arrow_columns.numeric(np.asarray(v)) for k, v in columns.items()})
