"""The shipped scenarios run: the quickstart reaches its accuracy, the others on small settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.engine.runner import run
from simulator.loader import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.slow
def test_quickstart_reaches_90_percent_on_digits():
    result = run(load_scenario(SCENARIOS / "quickstart.yaml"), out_root=None)
    s = result.summary
    assert s["status"] == "completed" and s["versions"] == 40
    assert s["final_accuracy"] >= 0.90
    assert s["notes"] == []  # every allocation solved


def test_stragglers_scenario_interrupts_on_deadline_and_offline():
    scenario = load_scenario(SCENARIOS / "stragglers.yaml", ["simulation.rounds=12"])
    result = run(scenario, out_root=None)
    events = result.events.to_pylist()
    reasons = {e["detail"] for e in events if e["event"] == "failure"}
    assert reasons == {"deadline", "offline"}
    latencies = result.metrics.column("round_latency_s").to_pylist()
    assert max(latencies) <= scenario.simulation.deadline_s + 1e-12
    assert result.summary["status"] == "completed"


def test_systems_scenario_small():
    scenario = load_scenario(
        SCENARIOS / "systems_10k.yaml", ["devices.count=500", "simulation.rounds=3"]
    )
    result = run(scenario, out_root=None)
    assert result.summary["versions"] == 3
    assert result.metrics.column("n_delivered").to_pylist() == [500, 500, 500]
    assert result.summary["final_accuracy"] is None  # systems-only: no training
