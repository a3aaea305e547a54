"""Device and availability traces: tables a user measured, read and checked row by row.

Device tables (``devices.source: {kind: table, path}``): one row per device, in device-id
order, with any of the columns in :data:`DEVICE_COLUMNS`; a column the table lacks falls back
to the scenario's distribution. Every value must be a finite number within its column's range.

Availability traces:
A CSV (or Parquet) file with one row per online interval: ``device_id, online_from_s,
online_until_s`` (s of virtual time). A device is offline outside its intervals; intervals
that touch are merged. Rows are checked before a run starts: a non-number, a negative time,
an empty interval (until <= from), an interval that overlaps another of the same device, or a
device id outside ``0..count-1`` raises :class:`TraceError` naming the file and the row.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLUMNS = ("device_id", "online_from_s", "online_until_s")


class TraceError(ValueError):
    """A trace file or one of its rows that cannot be used (``row`` counts data rows from 1)."""

    def __init__(self, path: Path | str, row: int | None, expected: str, found: str):
        self.path, self.row, self.expected, self.found = str(path), row, expected, found
        where = f"{path}" if row is None else f"{path} row {row}"
        super().__init__(f"{where}: expected {expected}, found {found}")


def _rows(path: Path, required: tuple[str, ...] = COLUMNS) -> list[dict]:
    if not path.is_file():
        raise TraceError(path, None, "a CSV or Parquet file", "no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises many kinds for a corrupt file
            raise TraceError(path, None, "a readable Parquet file", type(exc).__name__) from None
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(path, None, f"columns {', '.join(required)}", f"{reader.fieldnames}")
        return list(reader)


# column -> (its check, what it must be): the units are those of the scenario fields
DEVICE_COLUMNS = {
    "cpu_hz": (lambda v: v > 0, "a number > 0"),
    "cycles_per_sample": (lambda v: v > 0, "a number > 0"),
    "tx_power_dbm": (lambda v: -50 <= v <= 60, "a power in dBm within -50..60"),
    "x_m": (lambda v: True, "a position in m"),
    "y_m": (lambda v: True, "a position in m"),
    "kappa": (lambda v: v >= 0, "a number >= 0"),
}


def read_device_table(path: str | Path, num_devices: int) -> dict[str, np.ndarray]:
    """The table's device columns, each ndarray [num_devices] float. Raises
    :class:`TraceError` for a missing file, a wrong row count, an unknown column, or a value
    that is not a finite number in range (naming the row and column)."""
    path = Path(path).expanduser()
    rows = _rows(path, required=())
    if len(rows) != num_devices:
        raise TraceError(path, None, f"{num_devices} rows (devices.count)", f"{len(rows)} rows")
    names = list(rows[0]) if rows else []
    unknown = [c for c in names if c not in DEVICE_COLUMNS and c != "device_id"]
    if unknown:
        raise TraceError(path, None, f"columns among {', '.join(DEVICE_COLUMNS)}", f"{unknown}")
    columns = {}
    for name in (c for c in names if c in DEVICE_COLUMNS):
        check, what = DEVICE_COLUMNS[name]
        values = np.empty(num_devices)
        for i, row in enumerate(rows, start=1):
            try:
                value = float(row[name])
            except (TypeError, ValueError):
                raise TraceError(path, i, f"{name}: {what}", repr(row[name])) from None
            if not math.isfinite(value) or not check(value):
                raise TraceError(path, i, f"{name}: {what}", f"{value:g}")
            values[i - 1] = value
        columns[name] = values
    if "device_id" in names:
        ids = [str(row["device_id"]).strip() for row in rows]
        if ids != [str(k) for k in range(num_devices)]:
            raise TraceError(
                path, None, f"device_id 0..{num_devices - 1} in order", "another order"
            )
    if ("x_m" in columns) != ("y_m" in columns):
        raise TraceError(path, None, "both x_m and y_m, or neither", f"columns {names}")
    return columns


def read_availability_trace(path: str | Path, num_devices: int) -> dict[int, np.ndarray]:
    """Per device id, its online intervals [k, 2] s, sorted and merged where they touch."""
    path = Path(path).expanduser()
    rows = _rows(path)
    by_device: dict[int, list[tuple[float, float, int]]] = {}
    for i, row in enumerate(rows, start=1):
        try:
            dev_text = str(row["device_id"]).strip()
            dev = int(dev_text)
            start, end = float(row["online_from_s"]), float(row["online_until_s"])
        except (KeyError, TypeError, ValueError):
            raise TraceError(path, i, "an integer device_id and two numbers", f"{row}") from None
        if not 0 <= dev < num_devices:
            raise TraceError(path, i, f"a device_id in 0..{num_devices - 1}", str(dev))
        if not (math.isfinite(start) and start >= 0 and not math.isnan(end) and end > start):
            raise TraceError(
                path, i, "0 <= online_from_s < online_until_s", f"{start:g} to {end:g}"
            )
        by_device.setdefault(dev, []).append((start, end, i))
    intervals = {}
    for dev, spans in by_device.items():
        spans.sort()
        merged: list[list[float]] = []
        for (start, end, i), prev in zip(spans, [None, *spans[:-1]], strict=True):
            if prev is not None and start < prev[1]:
                raise TraceError(
                    path, i, f"no overlap with row {prev[2]} of device {dev}",
                    f"{start:g} to {end:g} inside {prev[0]:g} to {prev[1]:g}",
                )  # fmt: skip
            if merged and start == merged[-1][1]:
                merged[-1][1] = end
            else:
                merged.append([start, end])
        intervals[dev] = np.array(merged)
    return intervals


@dataclass(frozen=True)
class TraceAvailability:
    """Online exactly within each device's trace intervals (a device absent from the trace is
    never online)."""

    intervals: dict[int, np.ndarray]

    def initially_online(self, rng: np.random.Generator, *, device_id: int) -> bool:
        spans = self.intervals.get(device_id)
        return spans is not None and bool(((spans[:, 0] <= 0.0) & (0.0 < spans[:, 1])).any())

    def next_change_s(self, rng, *, device_id: int, online: bool, now_s: float) -> float:
        spans = self.intervals.get(device_id)
        if spans is None:
            return math.inf
        if online:  # the end of the interval we are in
            inside = (spans[:, 0] <= now_s) & (now_s < spans[:, 1])
            return float(spans[inside, 1][0] - now_s) if inside.any() else 0.0
        later = spans[spans[:, 0] > now_s, 0]
        return float(later[0] - now_s) if later.size else math.inf
