"""Collects the event log and the per-version metrics of a run, as column lists.

Columnar lists keep a 10^6-event run cheap, and a stage run as arrays adds its events as
array chunks (:meth:`Recorder.bulk`). :meth:`Recorder.events_table` and
:meth:`Recorder.metrics_table` turn them into Arrow tables for Parquet.

Events recorded one by one are in the order SimPy processed them. A run whose stages ran as
arrays records each stage's device events ahead of time, so its table is put in canonical
order (:func:`canonical_order`): by time; at the same instant by round (events of no round
first), then the round's start, the devices' events by device id (a device's own events in
the order recorded), then the other server events in a fixed order of kinds. The same order
applied to a per-device-process run of the same scenario gives the same table
(``tests/simulator/test_bulk_stage.py``).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from simulator.engine import arrow_columns

SERVER = -1  # device_id of events that belong to the server

# where a server event sorts among events at the same instant (device events are 0)
SERVER_ORDER = {"positions": -3, "no_device_online": -2, "round_start": -1, "barrier": 1,
                "reform": 2, "coalition_change": 3, "publish": 4}  # fmt: skip
OTHER_SERVER_EVENT = 5


def canonical_order(time_s, event, device_id, round_idx) -> np.ndarray:
    """Row order [n] of an event table in canonical order (see the module docstring);
    ``event``: the event names [n]."""
    rank = np.zeros(time_s.size, dtype=np.int64)
    server = np.flatnonzero(device_id == SERVER)
    rank[server] = [SERVER_ORDER.get(str(e), OTHER_SERVER_EVENT) for e in event[server]]
    return _ordered_by(time_s, rank, device_id, round_idx)


def _ordered_by(time_s, rank, device_id, round_idx) -> np.ndarray:
    """Stable sort by (time, round, rank, device); ties keep the recorded order. The last
    three are packed into one int64 (rounds < 2^30, ranks < 2^3, devices < 2^25 + 1 with the
    server's -1), so a 40-million-row log sorts on two keys."""
    packed = (round_idx + 1) << np.int64(28)
    packed |= (rank + 4) << np.int64(25)
    packed |= device_id + 1
    return np.lexsort((packed, time_s))


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

    def __init__(self, keep: str = "all") -> None:
        """``keep``: ``all`` events, the server's only (``rounds``), or ``none``."""
        self._events: dict[str, list] = {c: [] for c in self.EVENT_COLUMNS}
        self.metrics: list[dict] = []
        self.keep = keep
        self._all = keep == "all"
        self._failure_reasons: set[str] = set()  # kept aside when failures are not logged
        self.canonical = False  # set when stages run as arrays: sort the table canonically
        self._chunks: list[dict] = []  # events added as arrays (stages run in bulk)
        self._chunk_rows = 0

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
        if not self._all:
            if event == "failure":
                self._failure_reasons.add(detail)
            if self.keep == "none" or device_id != SERVER:
                return
        ev = self._events
        ev["time_s"].append(time_s)
        ev["event"].append(event)
        ev["device_id"].append(device_id)
        ev["round"].append(round_idx)
        ev["duration_s"].append(duration_s)
        ev["bandwidth_hz"].append(bandwidth_hz)
        ev["detail"].append(detail)
        ev["leg"].append(leg)

    @property
    def keeps_device_events(self) -> bool:
        return self._all

    def bulk(self, time_s, event, device_id, round_idx: int, *, duration_s=math.nan,
             bandwidth_hz=math.nan, detail="", leg="") -> None:  # fmt: skip
        """Many device events at once: ``time_s`` and ``device_id`` arrays [n]; every other
        field an array [n] or one value for all."""
        n = len(time_s)
        if n == 0:
            return
        if not self._all:
            if isinstance(event, str) and event == "failure":
                self._failure_reasons.update(np.atleast_1d(detail).tolist())
            return  # device events are logged only with ``all``
        self._chunks.append({
            "time_s": np.asarray(time_s, dtype=np.float64), "event": event,
            "device_id": np.asarray(device_id, dtype=np.int64), "round": round_idx,
            "duration_s": duration_s, "bandwidth_hz": bandwidth_hz, "detail": detail, "leg": leg,
        })  # fmt: skip
        self._chunks[-1]["n"] = n
        self._chunks[-1]["at"] = len(self._events["time_s"])  # after the rows logged so far
        self._chunk_rows += n

    def failure_reasons(self) -> set[str]:
        """Every failure reason the run saw (whatever ``keep`` logged)."""
        ev = self._events
        logged = {d for e, d in zip(ev["event"], ev["detail"], strict=True) if e == "failure"}
        for chunk in self._chunks:
            if isinstance(chunk["event"], str) and chunk["event"] == "failure":
                logged.update(np.atleast_1d(chunk["detail"]).tolist())
        return logged | self._failure_reasons

    def metric_row(self, row: dict) -> None:
        self.metrics.append(row)

    @property
    def num_events(self) -> int:
        return len(self._events["time_s"]) + self._chunk_rows

    def _spliced(self, rows: np.ndarray, piece) -> np.ndarray:
        """A column in recorded order: ``rows`` (the events logged one by one) with each
        chunk's ``piece(chunk)`` placed where the chunk was added."""
        if not self._chunks:
            return rows
        parts, done = [], 0
        for chunk in self._chunks:
            parts.append(rows[done : chunk["at"]])
            done = chunk["at"]
            parts.append(piece(chunk))
        parts.append(rows[done:])
        return np.concatenate(parts)

    def _column(self, name: str, dtype) -> np.ndarray:
        """One column in recorded order (a chunk's scalar broadcast)."""

        def piece(chunk: dict) -> np.ndarray:
            value = chunk[name]
            if np.ndim(value) == 0:
                return np.full(chunk["n"], value, dtype=dtype)
            return np.asarray(value, dtype=dtype)

        return self._spliced(np.asarray(self._events[name], dtype=dtype), piece)

    def _strings(self, name: str) -> tuple[np.ndarray, list[str]]:
        """A string column in recorded order as (int32 codes, dictionary): tens of millions
        of rows without a Python object per row."""
        words: dict[str, int] = {}

        def code(text: str) -> int:
            return words.setdefault(text, len(words))

        def piece(chunk: dict) -> np.ndarray:
            value = chunk[name]
            if np.ndim(value) == 0:
                return np.full(chunk["n"], code(str(value)), dtype=np.int32)
            unique, inverse = np.unique(np.asarray(value, dtype=object), return_inverse=True)
            mapped = np.array([code(str(u)) for u in unique], dtype=np.int32)
            return mapped[inverse.reshape(-1)]

        rows = np.fromiter((code(t) for t in self._events[name]), np.int32)
        return self._spliced(rows, piece), list(words)

    def events_table(self) -> pa.Table:
        time_s = self._column("time_s", np.float64)
        event, event_words = self._strings("event")
        device = self._column("device_id", np.int64)
        rounds = self._column("round", np.int64)
        order = None
        if self.canonical:
            rank_of = np.array([SERVER_ORDER.get(w, OTHER_SERVER_EVENT) for w in event_words])
            rank = np.where(device == SERVER, rank_of[event] if event.size else 0, 0)
            order = _ordered_by(time_s, rank, device, rounds)
            del rank

        def ordered(values: np.ndarray) -> np.ndarray:
            return values if order is None else values[order]

        def strings(codes: np.ndarray, words: list[str]) -> pa.Array:
            return arrow_columns.dictionary(ordered(codes), words)

        columns = {
            "time_s": arrow_columns.numeric(ordered(time_s)),
            "event": strings(event, event_words),
            "device_id": arrow_columns.numeric(ordered(device)),
            "round": arrow_columns.numeric(ordered(rounds)),
        }
        del time_s, event, device, rounds
        for name in ("duration_s", "bandwidth_hz"):
            columns[name] = arrow_columns.numeric(ordered(self._column(name, np.float64)))
        columns["detail"] = strings(*self._strings("detail"))
        columns["leg"] = strings(*self._strings("leg"))
        return pa.table(columns)

    def metrics_table(self) -> pa.Table:
        return arrow_columns.from_rows(self.metrics)
