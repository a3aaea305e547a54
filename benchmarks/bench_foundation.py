"""Issue-2 performance targets, measured side by side in one run; prints a table.

    python benchmarks/bench_foundation.py            (or: make bench)

Rows: batched cohort training vs the per-client loop; FedAvg 100 devices x 10 rounds in-process
and as a whole `wedge run` process; the 10,000-device systems-only scenario; min-max cvxpy
re-solve at 1,000 devices. Wall times are medians of repeats where a row is cheap enough.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import Table, median_s

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from channels.minmax_latency import MinMaxLatencyProblem, minmax_latency_bisection  # noqa: E402
from fl.datasets import digits_pool  # noqa: E402
from fl.models import mlp  # noqa: E402
from fl.partition import partition_dirichlet  # noqa: E402
from fl.training import LocalWork, plan_batches, train_cohort, train_cohort_loop  # noqa: E402

TABLE = Table()
row = TABLE.row


def bench_batched_training() -> None:
    rng = np.random.default_rng(0)
    train_x, train_y, _, _ = digits_pool(0.2, rng)
    clients = partition_dirichlet(train_y.numpy(), 100, 0.5, rng)
    work = LocalWork(batch_size=16, lr=0.05, steps=10)
    plan = plan_batches(clients, work, [np.random.default_rng(i) for i in range(100)])
    for hidden in ([32], [64]):
        batched, loop = _time_training(hidden, plan, train_x, train_y)
        ratio = loop / batched
        row(
            f"cohort training, 100 clients, MLP 64-{hidden[0]}-10, 10 steps x 16",
            f"batched {batched * 1e3:.1f} ms, loop {loop * 1e3:.0f} ms, {ratio:.1f}x",
            ">= 20x",
            ratio >= 20,
        )


def _time_training(hidden, plan, train_x, train_y) -> tuple[float, float]:
    """Median wall seconds of (batched, per-client loop) on the same plan and start."""
    model = mlp((1, 8, 8), hidden, 10)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    batched = median_s(
        lambda: train_cohort(model, start, train_x, train_y, plan, 0.05), 7, warm_up=True
    )
    loop = median_s(
        lambda: train_cohort_loop(
            lambda: mlp((1, 8, 8), hidden, 10), start, train_x, train_y, plan, 0.05
        ),
        3,
        warm_up=True,
    )
    return batched, loop


def bench_fedavg_100() -> None:
    # A fresh process, so first-call costs (vmap set-up, data load) are counted honestly.
    whole, _, summary = wedge_run(ROOT / "benchmarks" / "fedavg_100.yaml")
    inside = summary["wall_time_s"]
    row(
        "FedAvg digits, 100 devices, 10 rounds, in process (build+train+eval+sim)",
        f"{inside:.2f} s (final acc {summary['final_accuracy']:.3f})",
        "<= 1 s",
        inside <= 1.0,
    )
    row(
        "FedAvg digits, 100 devices: whole `wedge run` process incl. imports",
        f"{whole:.2f} s",
        "<= 5 s",
        whole <= 5.0,
    )


def wedge_run(scenario: Path) -> tuple[float, float, dict]:
    """Run ``wedge run`` in a fresh process: (wall s, peak RSS MB of children, summary)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [str(Path(sys.executable).with_name("wedge")), "run", str(scenario), "--quiet"]
        t = time.perf_counter()
        subprocess.run([*cmd, "--out", out], check=True, capture_output=True)
        whole = time.perf_counter() - t
        summary = json.loads(next(Path(out).glob("*/summary.json")).read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return whole, peak_mb, summary


def bench_systems_10k() -> None:
    # ru_maxrss of children is the largest child so far; the 10k run is by far the largest.
    whole, peak_mb, summary = wedge_run(ROOT / "scenarios" / "systems_10k.yaml")
    events_per_s = summary["events"] / summary["wall_time_s"]
    row(
        "systems-only, 10,000 devices x 20 rounds, Rayleigh, equal share",
        f"{whole:.1f} s process ({summary['wall_time_s']:.1f} s simulating), "
        f"peak {peak_mb:.0f} MB, {summary['events']:,} events, {events_per_s:,.0f} events/s",
        "<= 20 s, <= 1 GB",
        whole <= 20 and peak_mb <= 1024,
    )


def bench_minmax_cvxpy() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    demand = np.full(n, 0.154)  # Mbit: the digits MLP
    d_km = np.sqrt(rng.uniform(0.01**2, 0.5**2, n))
    gamma_mhz = (0.2 * 10 ** (-(128.1 + 37.6 * np.log10(d_km)) / 10) / 4e-21) / 1e6
    fixed = rng.uniform(0.01, 0.3, n)
    problem = MinMaxLatencyProblem(n)
    scale = iter(rng.exponential(1.0, (100, n)))

    def resolve():
        problem.solve(demand, gamma_mhz * next(scale), fixed, 20.0)

    cvx = median_s(resolve, 10, warm_up=True)
    bis = median_s(
        lambda: minmax_latency_bisection(demand, gamma_mhz, fixed, 20.0), 10, warm_up=True
    )
    row(
        "min-max latency allocation, 1,000 devices, per re-solve",
        f"cvxpy {cvx * 1e3:.0f} ms; Lambert-W bisection {bis * 1e3:.1f} ms",
        "cvxpy <= 200 ms",
        cvx <= 0.2,
    )


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    for bench in (bench_batched_training, bench_fedavg_100, bench_systems_10k, bench_minmax_cvxpy):
        bench()
    TABLE.print()


if __name__ == "__main__":
    main()
