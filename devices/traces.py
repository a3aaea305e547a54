"""Availability traces: when each device is online, read from a table of intervals.

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


def _rows(path: Path) -> list[dict]:
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
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(path, None, f"columns {', '.join(COLUMNS)}", f"{reader.fieldnames}")
        return list(reader)


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
