"""Issue-4 performance target: asynchronous arrivals per wall second; prints a table.

    python benchmarks/bench_async.py

Systems-only (no training), 10,000 devices all training at once, every finished upload an
arrival (``benchmarks/async_10k.yaml``). Rows: FedAsync (a version per arrival) and FedBuff
(K = 10) with fixed equal band slots (issue 4's target), and FedAsync on the re-shared uplink
band, whose schedule is kept incrementally (issue 15's target; ``bench_reshare.py`` times the
uplink alone). Arrivals/s counts the whole in-process run (building 10,000 devices included);
every row runs 40,000 arrivals, so that set-up weighs the same in each.
"""

from __future__ import annotations

import sys
from pathlib import Path

from timing import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.engine.runner import simulate  # noqa: E402
from simulator.loader import load_scenario  # noqa: E402

SCENARIO = ROOT / "benchmarks" / "async_10k.yaml"


def arrivals_per_s(overrides: list[str]) -> tuple[int, float]:
    recorder, ctx, wall_s = simulate(load_scenario(SCENARIO, overrides))
    arrivals = len(ctx.staleness)
    return arrivals, wall_s


def main() -> None:
    table = Table()
    for what, overrides, target in [
        ("FedAsync, equal slots, 10,000 devices", [], 5000.0),
        (
            "FedBuff K=10, equal slots, 10,000 devices",
            ["strategy={kind: fedbuff}", "simulation.rounds=4000"],
            5000.0,
        ),
        (
            "FedAsync, re-shared uplink, 10,000 devices",
            ["simulation.uplink_sharing=reshare"],  # 40,000 arrivals, as the other rows
            5000.0,  # issue 15
        ),
    ]:
        arrivals, wall_s = arrivals_per_s(overrides)
        rate = arrivals / wall_s
        table.row(
            what,
            f"{arrivals:,} arrivals in {wall_s:.2f} s = {rate:,.0f} arrivals/s",
            ">= 5,000 arrivals/s" if target else "(information)",
            rate >= target if target else None,
        )
    table.print()


if __name__ == "__main__":
    main()
