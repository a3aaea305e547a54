"""Golden run: a tiny scenario's metrics must not drift silently.

The timing columns are worked out here by hand from the devices' parameters (equal-share
uplink, unicast downlink, no fading: every round takes the same time); the learning columns
(accuracy, loss) are pinned in ``golden/tiny_metrics.json``, produced once by
``python -m tests.simulator.test_golden --update`` and checked by eye: accuracy rises from
about 0.5 to about 0.87 in four rounds. A deliberate change to the trainer regenerates it in
the same commit.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from simulator.engine.runner import run
from simulator.engine.world import build
from tests.conftest import make_scenario

GOLDEN = Path(__file__).with_name("golden") / "tiny_metrics.json"
LEARNING = ("accuracy", "loss")
GOLDEN_SCENARIO = {
    "channel.fading": {"kind": "none"},
    "channel.allocator": {"kind": "equal_share"},
    "training": {"local_steps": 20, "batch_size": 16, "lr": 0.3},
    "model.hidden": [16],
    "simulation.rounds": 4,
}


def current_metrics() -> list[dict]:
    result = run(make_scenario(GOLDEN_SCENARIO), out_root=None)
    return result.metrics.to_pylist()


def hand_timing():
    """Per device (downlink, compute, uplink) s from the textbook formulas: 4 devices, unicast
    downlink (4 MHz and 43 dBm split in 4), equal-share uplink (1 MHz / 4) at 20 dBm, macro
    path loss without shadowing, 32-bit MLP 64-16-10, 20 steps of 16 samples."""
    world = build(make_scenario(GOLDEN_SCENARIO))
    pop = world.population
    bits = 32 * (64 * 16 + 16 + 16 * 10 + 10)
    noise_w_hz = 10 ** ((-174 - 30) / 10)
    phases = []
    for k in range(4):
        gain = 10 ** (-(128.1 + 37.6 * math.log10(pop.distance_m[k] / 1000)) / 10)
        p_dl, b_dl = 10 ** ((43 - 30) / 10) / 4, 4e6 / 4
        p_ul, b_ul = 10 ** ((20 - 30) / 10), 1e6 / 4
        down = bits / (b_dl * math.log2(1 + p_dl * gain / (noise_w_hz * b_dl)))
        compute = 1e5 * 20 * 16 / pop.cpu_hz[k]
        up = bits / (b_ul * math.log2(1 + p_ul * gain / (noise_w_hz * b_ul)))
        phases.append((down, compute, up))
    return bits, phases, pop


def test_tiny_scenario_timing_by_hand_and_learning_as_pinned():
    rows = current_metrics()
    bits, phases, pop = hand_timing()
    totals = [sum(p) for p in phases]
    slowest = max(range(4), key=totals.__getitem__)
    round_s = totals[slowest]
    p_ul = 10 ** ((20 - 30) / 10)
    for i, row in enumerate(rows):
        assert row["round_latency_s"] == pytest.approx(round_s, rel=1e-9)
        assert row["time_s"] == pytest.approx((i + 1) * round_s, rel=1e-9)
        assert (row["downlink_s"], row["compute_s"], row["uplink_s"]) == pytest.approx(
            phases[slowest], rel=1e-9
        )
        assert (row["n_delivered"], row["bits_up"], row["bits_down"]) == (4, 4 * bits, 4 * bits)
        assert row["energy_tx_j"] == pytest.approx(sum(p_ul * p[2] for p in phases), rel=1e-9)
        assert row["energy_compute_j"] == pytest.approx(
            sum(1e-28 * pop.cpu_hz[k] ** 3 * phases[k][1] for k in range(4)), rel=1e-9
        )
    expected = json.loads(GOLDEN.read_text())
    assert len(rows) == len(expected) == 4
    for got, want in zip(rows, expected, strict=True):
        for col in LEARNING:  # allows for float reassociation in the trainer
            assert got[col] == pytest.approx(want[col], rel=1e-4), col
    accuracy = [row["accuracy"] for row in rows]
    assert accuracy == sorted(accuracy) and accuracy[-1] > 0.8  # it learns


if __name__ == "__main__" and "--update" in sys.argv:
    pinned = [{c: row[c] for c in ("version", *LEARNING)} for row in current_metrics()]
    GOLDEN.write_text(json.dumps(pinned, indent=2) + "\n")
    print(f"wrote {GOLDEN}")
