"""Issue-15 scale targets, measured side by side in one run; prints a table.

    python benchmarks/bench_scale.py [--quick] [--events-all-1m]

Rows:
* one bare SimPy timeout (10,000 processes of 100 timeouts, only ``env.run()`` timed);
* systems-only cost per device-round (``scenarios/systems_10k.yaml``, 10 rounds, every device
  every round) at 10k, 100k and 1M devices, each in its own process: the simulation alone
  (build excluded) with ``output.events: none`` and ``all`` (1M with ``all`` only when asked:
  a 40-million-row log), the ratio to the bare timeout, the whole process and its peak memory;
* start-up: ``wedge run scenarios/quickstart.yaml`` against ``import torch``, whole processes.

``--quick`` stops at 100k devices. Medians of 3 where a row is cheap.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
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
    table.print()


if __name__ == "__main__":
    main()
