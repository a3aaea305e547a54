"""Issue-15 scale targets, measured side by side in one run; prints a table.

    python benchmarks/bench_scale.py [--quick] [--events-all-1m]

Rows:
* one bare SimPy timeout (10,000 processes of 100 timeouts, only ``env.run()`` timed);
* systems-only cost per device-round (``scenarios/systems_10k.yaml``, 10 rounds, every device
  every round) at 10k, 100k and 1M devices, each in its own process: the simulation alone
  (build excluded) with ``output.events: none`` and ``all`` (1M with ``all`` only when asked:
  a 40-million-row log), the ratio to the bare timeout, the whole process and its peak memory;
* start-up: ``wedge run scenarios/quickstart.yaml`` against ``import torch``, whole processes;
* the cvxpy min-max allocator on random cohorts of 100 to 5,000 devices (the tests' law:
  budget 10 kHz-100 MHz, payloads 10 kbit-10 Mbit, gamma 1e5-1e12 Hz, fixed times 0-2 s):
  how many it solves within 1e-5 of the exact (Lambert-W) latency without falling back, and
  its time against the exact solver's.

``--quick`` stops at 100k devices and 700-device cohorts. Medians of 3 where a row is cheap.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from timing import Table  # noqa: E402

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from simulator.loader import load_scenario
from simulator.engine.runner import simulate
n, events = {n}, {events!r}
scenario = load_scenario({path!r}, {{"devices.count": n, "simulation.rounds": 10,
                                    "output.events": events}})
started = time.perf_counter()
recorder, ctx, _ = simulate(scenario)
sim_s = time.perf_counter() - started  # build + run
table_s = time.perf_counter()
recorder.events_table()
table_s = time.perf_counter() - table_s
print(json.dumps({{"sim_s": sim_s, "table_s": table_s, "events": recorder.num_events,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}}))
"""


def bare_timeout_us() -> float:
    import simpy

    def proc(env):
        for _ in range(100):
            yield env.timeout(1.0)

    env = simpy.Environment()
    for _ in range(10_000):
        env.process(proc(env))
    started = time.perf_counter()
    env.run()
    return (time.perf_counter() - started) / 1e6 * 1e6


def systems_only(n: int, events: str) -> dict:
    code = CHILD.format(root=str(ROOT), n=n, events=events,
                        path=str(ROOT / "scenarios" / "systems_10k.yaml"))  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def whole_s(argv: list[str], repeats: int = 3) -> float:
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, cwd=ROOT)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def random_cohort(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        demand_bits=rng.uniform(1e4, 1e7, n),
        gamma_hz=10 ** rng.uniform(5, 12, n),
        fixed_time_s=rng.uniform(0.0, 2.0, n),
        total_bandwidth_hz=float(rng.uniform(1e4, 1e8)),
    )


def cvxpy_minmax_row(table: Table, n: int, cohorts: int = 3) -> None:
    """cvxpy against the exact root search on ``cohorts`` random cohorts of ``n`` devices."""
    from channels.minmax_latency import MinMaxLatency

    accurate, cvx_s, exact_s, notes = 0, [], [], []
    for seed in range(cohorts):
        kw = random_cohort(n, seed)
        exact = MinMaxLatency(solver="bisection").allocate(**kw)
        got = MinMaxLatency(solver="cvxpy").allocate(**kw)
        exact_s.append(exact.solve_time_s)
        cvx_s.append(got.solve_time_s)
        gap = (got.latency_s - exact.latency_s) / exact.latency_s
        ok = "->" not in got.status and abs(gap) <= 1e-5
        accurate += ok
        if "above the exact optimum" in got.status:  # the certificate caught an inexact answer
            notes.append("off by " + got.status.split(", ")[-1].split(" above")[0])
        elif not ok:
            notes.append("solver failed" if "->" in got.status else f"off by {gap:.1e}")
    table.row(
        f"cvxpy min-max, {cohorts} random cohorts of {n:,} devices",
        f"{accurate}/{cohorts} within 1e-5 without fallback"
        + (f" ({', '.join(notes)})" if notes else "")
        + f"; cvxpy {statistics.median(cvx_s):.2f} s, exact {statistics.median(exact_s) * 1e3:.1f}"
        " ms (medians, fallbacks included)",
        "all, no fallback",
        accurate == cohorts,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100k devices")
    parser.add_argument("--events-all-1m", action="store_true")
    args = parser.parse_args()
    table = Table()
    bare = statistics.median(bare_timeout_us() for _ in range(3))
    table.row("bare SimPy timeout (10k processes x 100, env.run only)", f"{bare:.2f} us", "",
              None)  # fmt: skip
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    for n in sizes:
        modes = ["none", "all"] if (n < 1_000_000 or args.events_all_1m) else ["none"]
        for events in modes:
            r = systems_only(n, events)
            per = r["sim_s"] / (n * 10) * 1e6
            table.row(
                f"systems-only {n:,} devices x 10 rounds, events {events}",
                f"{per:.2f} us/device-round ({per / bare:.2f}x a timeout); run {r['sim_s']:.1f}"
                f" s, log table {r['table_s']:.1f} s, process {r['process_s']:.1f} s, peak "
                f"{r['peak_gb']:.2f} GB, {r['events']:,} events",
                "<= 2x a timeout" + (", <= 4 GB" if n == 1_000_000 else ""),
                per <= 2 * bare and (n < 1_000_000 or r["peak_gb"] <= 4.0),
            )
    torch_s = whole_s([sys.executable, "-c", "import torch"])
    out = tempfile.mkdtemp(prefix="wedge-bench-")
    quick_s = whole_s([str(Path(sys.executable).with_name("wedge")), "run",
                       "scenarios/quickstart.yaml", "--out", out])  # fmt: skip
    table.row("start-up: wedge run quickstart / import torch (whole processes)",
              f"{quick_s:.2f} s / {torch_s:.2f} s = {quick_s / torch_s:.2f}x", "<= 1.5x",
              quick_s / torch_s <= 1.5)  # fmt: skip
    for n in [100, 700] if args.quick else [100, 700, 2_000, 5_000]:
        cvxpy_minmax_row(table, n)
    table.print()


if __name__ == "__main__":
    main()
