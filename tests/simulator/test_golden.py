"""Golden run: a tiny scenario's metrics must not drift silently.

The expected file was produced once by ``python -m tests.simulator.test_golden --update`` and
checked by eye (latencies match the hand-computed timeline tests' formulas; accuracy rises).
A deliberate change to the time model or the trainer regenerates it in the same commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from simulator.engine.runner import run
from tests.conftest import make_scenario

GOLDEN = Path(__file__).with_name("golden") / "tiny_metrics.json"
COLUMNS = (
    "version",
    "time_s",
    "round_latency_s",
    "compute_s",
    "uplink_s",
    "downlink_s",
    "n_delivered",
    "bits_up",
    "energy_compute_j",
    "energy_tx_j",
    "accuracy",
    "loss",
)
GOLDEN_SCENARIO = {
    "channel.fading": {"kind": "rayleigh", "coherence_s": 0.005},
    "channel.allocator": {"kind": "minmax_latency", "solver": "bisection"},
    "simulation.rounds": 4,
}


def current_metrics() -> list[dict]:
    result = run(make_scenario(GOLDEN_SCENARIO), out_root=None)
    return [{c: row[c] for c in COLUMNS} for row in result.metrics.to_pylist()]


def test_tiny_scenario_matches_golden_metrics():
    expected = json.loads(GOLDEN.read_text())
    actual = current_metrics()
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        for col in COLUMNS:
            # timings are exact arithmetic; accuracy/loss allow for float reassociation
            tol = 1e-9 if col not in ("accuracy", "loss") else 1e-4
            assert got[col] == pytest.approx(want[col], rel=tol, abs=1e-12), col


if __name__ == "__main__" and "--update" in sys.argv:
    GOLDEN.write_text(json.dumps(current_metrics(), indent=2) + "\n")
    print(f"wrote {GOLDEN}")
