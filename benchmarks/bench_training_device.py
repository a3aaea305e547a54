"""Training on the CPU vs a CUDA GPU (``training.device``), side by side in one run.

Runs a scenario (default quickstart) once per available device, in this process, and prints
the wall time of each, the GPU's speed-up, and the largest difference of any accuracy / loss
value between the two (issue 10's check: 1e-5). Without a CUDA GPU only the CPU row is printed
and the table says so.

    python benchmarks/bench_training_device.py [scenario.yaml] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import Table  # noqa: E402

from simulator.engine.runner import simulate  # noqa: E402
from simulator.loader import load_scenario  # noqa: E402

COLUMNS = ("accuracy", "loss", "train_loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="scenarios/quickstart.yaml")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    scenario = load_scenario(args.scenario, args.set)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    table, wall, metrics = Table(), {}, {}
    for device in devices:
        training = scenario.training.model_copy(update={"device": device})
        started = time.perf_counter()
        recorder, _, _ = simulate(scenario.model_copy(update={"training": training}))
        wall[device] = time.perf_counter() - started
        metrics[device] = recorder.metrics_table().to_pandas()
        table.row(f"{scenario.name} on {device}", f"{wall[device]:.2f} s wall", "-", None)
    if "cuda" in wall:
        name = torch.cuda.get_device_name(0)
        diff = max(
            float(np.nanmax(np.abs(metrics["cuda"][c] - metrics["cpu"][c]))) for c in COLUMNS
        )
        table.row(f"speed-up on {name}", f"{wall['cpu'] / wall['cuda']:.2f}x", "-", None)
        table.row("max |GPU - CPU| of accuracy/loss", f"{diff:.2e}", "<= 1e-5", diff <= 1e-5)
    else:
        table.row("GPU", "no CUDA GPU on this machine: CPU only", "-", None)
    table.print()


if __name__ == "__main__":
    main()
