"""Round-protocol engine vs the engine before it: whole ``wedge run`` processes side by side.

The target of issue 9: quickstart and ``systems_10k`` within 10% of their wall time before
the round-protocol engine. The older engine is checked out from git (``--ref``, default the
commit before the protocol work) into a temporary worktree and run with the same
interpreter; the two trees alternate, repeat by repeat, so drift of this machine hits both.
Both runs do the same work (same events), though their downlink times differ: the older engine
radiated n times the server's power over n unicast sub-bands.

    python benchmarks/bench_protocol_overhead.py [--ref REV] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import Table

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("scenarios/quickstart.yaml", "scenarios/systems_10k.yaml")


def run_s(tree: Path, scenario: str, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "simulator.cli", "run", scenario, "--quiet", "--out", str(out)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="1c60270", help="git revision of the older engine")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = Table()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.ref],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            for scenario in SCENARIOS:
                times: dict[str, list[float]] = {"before": [], "now": []}
                for r in range(args.repeats):
                    for label, tree in (("before", old), ("now", ROOT)):
                        times[label].append(run_s(tree, scenario, Path(tmp) / f"{label}{r}"))
                before, now = (statistics.median(times[k]) for k in ("before", "now"))
                table.row(
                    f"{Path(scenario).stem}: wedge run, whole process (median of {args.repeats})",
                    f"{before:.2f} s before, {now:.2f} s now: {now / before:.2f}x",
                    "<= 1.10x",
                    now / before <= 1.10,
                )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False
            )
    table.print()


if __name__ == "__main__":
    main()
