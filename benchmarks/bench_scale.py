"""Issue-15 scale targets, measured side by side in one run; prints a table.

    python benchmarks/bench_scale.py [--quick] [--events-all-1m] [--cvxpy-only]

Rows:
* one bare SimPy timeout (10,000 processes of 100 timeouts, only ``env.run()`` timed);
* systems-only cost per device-round (``scenarios/systems_10k.yaml``, 10 rounds, every device
  every round) at 10k, 100k and 1M devices, each in its own process: the simulation alone
  (build excluded) with ``output.events: none`` and ``all`` (1M with ``all`` only when asked:
  a 40-million-row log), the ratio to the bare timeout, the whole process and its peak memory;
* start-up: ``wedge run scenarios/quickstart.yaml`` against ``import torch``, whole processes;
* the cvxpy min-max allocator on random cohorts of 100 to 5,000 devices (the tests' law:
  budget 10 kHz-100 MHz, payloads 10 kbit-10 Mbit, gamma 1e5-1e12 Hz, fixed times 0-2 s) and
  on physical ones (``channels.joint_instances``' standard setup, 20 MHz): how many it solves
  within 1e-5 of the exact (Lambert-W) latency without falling back, which cone scaling took,
  and its time against the exact solver's; then the shipped quickstart and ``systems_10k``
  (700 to 5,000 devices, 3 rounds) run with it.

``--quick`` stops at 100k devices and 700-device cohorts; ``--cvxpy-only`` runs only the cvxpy
rows. Medians of 3 where a row is cheap.
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
    """The tests' law: budget 10 kHz-100 MHz, payloads 10 kbit-10 Mbit, gamma 1e5-1e12 Hz
    (70 dB), fixed times 0-2 s."""
    rng = np.random.default_rng(seed)
    return dict(
        demand_bits=rng.uniform(1e4, 1e7, n),
        gamma_hz=10 ** rng.uniform(5, 12, n),
        fixed_time_s=rng.uniform(0.0, 2.0, n),
        total_bandwidth_hz=float(rng.uniform(1e4, 1e8)),
    )


def physical_cohort(n: int, seed: int) -> dict:
    """The standard wireless-FL setup of ``channels.joint_instances`` (macro path loss at
    50-500 m with Rayleigh fading, 23 dBm; a 0.5 Mbit payload; CPUs 0.5-2 GHz), 20 MHz."""
    from channels.joint_instances import draw_standard_devices

    fixed, prunable, payload, gamma = draw_standard_devices(n, np.random.default_rng(seed))
    return dict(
        demand_bits=payload,
        gamma_hz=gamma,
        fixed_time_s=fixed + prunable,
        total_bandwidth_hz=20e6,
    )


def _scaling_used(status: str) -> str:
    """Which of ``CONE_SCALINGS`` gave the certified split (1 when the status names none),
    with ``r`` when it took a second solve re-centred on the first one's split and ``p`` when
    it took a power-limited device's rate in the Pade form."""
    if "(cone scaling " not in status:
        return "1"
    used = status.split("(cone scaling ")[1].split(" of")[0]
    return used + ("r" if "re-centred" in status else "") + ("p" if "Pade form" in status else "")


def cvxpy_minmax_row(table: Table, n: int, family: str, cohorts: int = 3) -> None:
    """cvxpy against the exact root search on ``cohorts`` cohorts of ``n`` devices."""
    from channels.minmax_latency import MinMaxLatency

    draw = random_cohort if family == "random" else physical_cohort
    accurate, cvx_s, exact_s, notes, scalings = 0, [], [], [], []
    for seed in range(cohorts):
        kw = draw(n, seed)
        exact = MinMaxLatency(solver="bisection").allocate(**kw)
        got = MinMaxLatency(solver="cvxpy").allocate(**kw)
        exact_s.append(exact.solve_time_s)
        cvx_s.append(got.solve_time_s)
        gap = (got.latency_s - exact.latency_s) / exact.latency_s
        ok = "->" not in got.status and abs(gap) <= 1e-5
        accurate += ok
        if ok:
            scalings.append(_scaling_used(got.status))
            notes.append(f"{gap:.0e}")
        else:
            notes.append("fell back" if "->" in got.status else f"off by {gap:.1e}")
    table.row(
        f"cvxpy min-max, {cohorts} {family} cohorts of {n:,} devices",
        f"{accurate}/{cohorts} within 1e-5 without fallback (gaps {', '.join(notes)}; cone"
        f" scaling used {'/'.join(scalings) or '-'}); cvxpy {statistics.median(cvx_s):.2f} s,"
        f" exact {statistics.median(exact_s) * 1e3:.1f} ms (medians, retries included)",
        "all, no fallback",
        accurate == cohorts,
    )


def cvxpy_shipped_row(table: Table, name: str, overrides: dict) -> None:
    """A shipped scenario run with the cvxpy min-max allocator: rounds certified within 1e-5
    of the exact split without falling back (the allocator's status says)."""
    from simulator.engine.runner import simulate
    from simulator.loader import load_scenario

    overrides = {"channel.allocator": {"kind": "minmax_latency", "solver": "cvxpy"}, **overrides}
    started = time.perf_counter()
    recorder, _, _ = simulate(load_scenario(ROOT / "scenarios" / f"{name}.yaml", overrides))
    wall_s = time.perf_counter() - started
    statuses = recorder.metrics_table().column("allocation_status").to_pylist()
    certified = sum("->" not in s for s in statuses)
    later = [_scaling_used(s) for s in statuses if "->" not in s and _scaling_used(s) != "1"]
    shown = ", ".join(f"{k}={v}" for k, v in overrides.items() if k != "channel.allocator")
    table.row(
        f"cvxpy min-max in scenarios/{name}.yaml ({shown})",
        f"{certified}/{len(statuses)} rounds certified without fallback ({len(later)} needed a"
        f" later cone scaling, a re-centred solve or the Pade form: {'/'.join(later) or '-'});"
        f" {wall_s:.1f} s",
        "all, no fallback",
        certified == len(statuses),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100k devices")
    parser.add_argument("--events-all-1m", action="store_true")
    parser.add_argument("--cvxpy-only", action="store_true", help="only the cvxpy rows")
    args = parser.parse_args()
    table = Table()
    if args.cvxpy_only:
        cvxpy_rows(table, args.quick)
        table.print()
        return
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
    cvxpy_rows(table, args.quick)
    table.print()


def cvxpy_rows(table: Table, quick: bool) -> None:
    for n in [100, 700] if quick else [100, 700, 2_000, 5_000]:
        for family in ("random", "physical"):
            cvxpy_minmax_row(table, n, family)
    cvxpy_shipped_row(table, "quickstart", {})
    for n in [700] if quick else [700, 2_000, 5_000]:
        cvxpy_shipped_row(table, "systems_10k", {"devices.count": n, "simulation.rounds": 3})


if __name__ == "__main__":
    main()
