"""Shared timing helper for the benchmark scripts."""

from __future__ import annotations

import statistics
import sys
import time


def median_s(fn, repeats: int, *, warm_up: bool = False) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls (after one untimed call if asked:
    vmap / cvxpy first-call costs are not steady state)."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Table:
    """Rows of (what, measured, target, verdict), printed as one aligned table at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def row(self, what: str, measured: str, target: str, ok: bool | None) -> None:
        verdict = "-" if ok is None else ("pass" if ok else "MISS")
        self.rows.append((what, measured, target, verdict))
        print(f"  {what}: {measured}", file=sys.stderr)

    def print(self) -> None:
        header = ("what", "measured", "target", "ok")
        widths = [max(len(r[i]) for r in [*self.rows, header]) for i in range(4)]
        line = "  ".join("{:<" + str(w) + "}" for w in widths)
        print(line.format(*header))
        print(line.format(*["-" * w for w in widths]))
        for r in self.rows:
            print(line.format(*r))
