"""Collects the event log and the per-version metrics of a run, as column lists.

Columnar lists keep a 10^6-event run cheap; :meth:`Recorder.events_table` and
:meth:`Recorder.metrics_table` turn them into Arrow tables for Parquet.
"""

from __future__ import annotations

import math

import pyarrow as pa

SERVER = -1  # device_id of events that belong to the server


class Recorder:
    """Event log: one row per event (``leg`` names the protocol leg of device events);
    metrics: one row per published model version."""

    EVENT_COLUMNS = (
        "time_s",
        "event",
        "device_id",
        "round",
        "duration_s",
        "bandwidth_hz",
        "detail",
        "leg",
    )

    def __init__(self) -> None:
        self._events: dict[str, list] = {c: [] for c in self.EVENT_COLUMNS}
        self.metrics: list[dict] = []

    def event(
        self,
        time_s: float,
        event: str,
        device_id: int = SERVER,
        round_idx: int = -1,
        duration_s: float = math.nan,
        bandwidth_hz: float = math.nan,
        detail: str = "",
        leg: str = "",
    ) -> None:
        ev = self._events
        ev["time_s"].append(time_s)
        ev["event"].append(event)
        ev["device_id"].append(device_id)
        ev["round"].append(round_idx)
        ev["duration_s"].append(duration_s)
        ev["bandwidth_hz"].append(bandwidth_hz)
        ev["detail"].append(detail)
        ev["leg"].append(leg)

    def metric_row(self, row: dict) -> None:
        self.metrics.append(row)

    @property
    def num_events(self) -> int:
        return len(self._events["time_s"])

    def events_table(self) -> pa.Table:
        ev = self._events
        return pa.table(
            {
                "time_s": pa.array(ev["time_s"], pa.float64()),
                "event": pa.array(ev["event"], pa.string()).dictionary_encode(),
                "device_id": pa.array(ev["device_id"], pa.int64()),
                "round": pa.array(ev["round"], pa.int64()),
                "duration_s": pa.array(ev["duration_s"], pa.float64()),
                "bandwidth_hz": pa.array(ev["bandwidth_hz"], pa.float64()),
                "detail": pa.array(ev["detail"], pa.string()).dictionary_encode(),
                "leg": pa.array(ev["leg"], pa.string()).dictionary_encode(),
            }
        )

    def metrics_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.metrics)
