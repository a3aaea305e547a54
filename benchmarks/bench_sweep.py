"""Issue 5: a 16-point systems-only sweep with 1 worker vs 2 workers, in one run.

    python benchmarks/bench_sweep.py

Each point is the 10,000-device scenario cut to 1,000 devices and 150 rounds (about 6 s
of simulation), so the timing reflects the work, not the Dask start-up. Wall times include
starting the LocalCluster; fresh output folders, so nothing is skipped as already done.
Repeats are interleaved (1, 2, 1, 2, ...) and medians reported: this VM's speed drifts.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.studies.sweep import load_sweep_file, run_sweep  # noqa: E402

SPEC = {
    "name": "bench16",
    "base": str(ROOT / "scenarios" / "systems_10k.yaml"),
    "seeds": [1, 2, 3, 4],
    "overrides": {"devices.count": 1000, "simulation.rounds": 150},
    "grid": {"channel.uplink_bandwidth_hz": [2.5e7, 5.0e7, 1.0e8, 2.0e8]},
}


def main(repeats: int = 2) -> None:
    # Interleaved repeats, medians: single runs on this 2-core VM vary by +-15%.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.yaml"
        path.write_text(yaml.safe_dump(SPEC))
        sweep = load_sweep_file(path)
        times: dict[int, list[float]] = {1: [], 2: []}
        for r in range(repeats):
            for workers in (1, 2):
                started = time.perf_counter()
                run_sweep(sweep, Path(tmp) / f"w{workers}-{r}", workers=workers)
                times[workers].append(time.perf_counter() - started)
    med = {w: statistics.median(t) for w, t in times.items()}
    print(f"{'workers':>8} {'points':>7} {'median wall s':>14} {'runs':>22} {'speed-up':>9}")
    for workers, wall in med.items():
        runs = ", ".join(f"{t:.1f}" for t in times[workers])
        print(f"{workers:8d} {len(sweep.points):7d} {wall:14.1f} {runs:>22} {med[1] / wall:8.2f}x")
    print(f"target: >= 1.7x with 2 workers -> {'pass' if med[1] / med[2] >= 1.7 else 'MISS'}")


if __name__ == "__main__":
    main()
