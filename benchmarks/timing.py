"""Shared timing helper for the benchmark scripts."""

from __future__ import annotations

import statistics
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
