"""wedge against Flower's simulation engine on the same FedAvg workload; prints a table.

    python benchmarks/bench_vs_flower.py [--flower-python PATH] [--repeats 3]

Both sides run as whole processes, timed wall to wall (imports, data, training, shutdown):
``wedge run benchmarks/vs_flower.yaml`` and ``benchmarks/flower_workload.py`` under an
interpreter with ``flwr[simulation]`` (the current one if it has flwr, else ``--flower-python``
or ``$FLOWER_PYTHON``; without one the Flower rows are skipped with a message). Workload:
digits split IID, MLP 64-64-10, 5 local steps of batch 16 at lr 0.05, every client every
round; 100 clients x 10 rounds and 700 clients x 3 rounds. Medians of ``--repeats`` runs.
wedge's side also simulates the radio (channel, allocation, event log), which Flower has not.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from timing import Table  # noqa: E402

SIZES = [(100, 10, 10.0), (700, 3, 30.0)]  # clients, rounds, target ratio


def whole_process_s(argv: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return wall, done.stdout


def flower_python(given: str | None) -> str | None:
    if given:
        return given
    if os.environ.get("FLOWER_PYTHON"):
        return os.environ["FLOWER_PYTHON"]
    if importlib.util.find_spec("flwr") is not None:
        return sys.executable
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flower-python", help="an interpreter with flwr[simulation]")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    wedge = str(Path(sys.executable).with_name("wedge"))
    flower = flower_python(args.flower_python)
    if flower is None:
        print("Flower is not installed here (pip install 'flwr[simulation]', or pass "
              "--flower-python): only wedge's side runs", file=sys.stderr)  # fmt: skip
    table = Table()
    out = Path(tempfile.mkdtemp(prefix="wedge-vs-flower-"))
    for clients, rounds, target in SIZES:
        walls, accuracy = [], ""
        for _ in range(args.repeats):
            wall, stdout = whole_process_s(
                [wedge, "run", "benchmarks/vs_flower.yaml", "--set", f"devices.count={clients}",
                 "--set", f"simulation.rounds={rounds}", "--out", str(out)], ROOT,
            )  # fmt: skip
            walls.append(wall)
            accuracy = next((ln for ln in stdout.splitlines() if ln.startswith("status")), "")
        wedge_s = statistics.median(walls)
        acc = accuracy.split("final accuracy ")[-1].split(",")[0] if accuracy else "?"
        table.row(f"wedge, {clients} clients x {rounds} rounds, whole process",
                  f"{wedge_s:.2f} s (accuracy {acc})", "", None)  # fmt: skip
        if flower is None:
            continue
        walls = []
        result = {}
        for _ in range(args.repeats):
            wall, stdout = whole_process_s(
                [flower, str(ROOT / "benchmarks" / "flower_workload.py"), str(clients),
                 str(rounds)], ROOT,
            )  # fmt: skip
            walls.append(wall)
            result = json.loads(stdout.strip().splitlines()[-1])
        flower_s = statistics.median(walls)
        table.row(f"Flower simulation, {clients} clients x {rounds} rounds, whole process",
                  f"{flower_s:.2f} s (accuracy {result.get('accuracy', float('nan')):.3f})",
                  "", None)  # fmt: skip
        ratio = flower_s / wedge_s
        table.row(f"Flower / wedge wall, {clients} x {rounds}", f"{ratio:.1f}x",
                  f">= {target:g}x", ratio >= target)  # fmt: skip
    table.print()


if __name__ == "__main__":
    main()
