"""``training: none`` skips learning but keeps every timing identical to the full mode."""

from __future__ import annotations

import math

from simulator.engine.runner import run
from tests.conftest import make_scenario, same_table

TIMING = {
    "channel.fading": {"kind": "rician", "k_factor": 2, "coherence_s": 0.02},
    "channel.allocator": {"kind": "minmax_latency", "solver": "bisection"},
    "simulation.deadline_s": 0.05,
}


def test_systems_only_timings_match_full_mode():
    full = run(make_scenario(TIMING), out_root=None)
    systems = run(
        make_scenario({**TIMING, "training": {"mode": "none", "local_steps": 2, "batch_size": 8}}),
        out_root=None,
    )
    timing_cols = ["time_s", "event", "device_id", "round", "duration_s", "bandwidth_hz", "detail"]
    assert same_table(full.events.select(timing_cols), systems.events.select(timing_cols))
    for col in ("time_s", "round_latency_s", "compute_s", "uplink_s", "bits_up", "energy_tx_j"):
        assert full.metrics.column(col).to_pylist() == systems.metrics.column(col).to_pylist()
    assert all(not math.isnan(a) for a in full.metrics.column("accuracy").to_pylist())
    assert all(math.isnan(a) for a in systems.metrics.column("accuracy").to_pylist())
