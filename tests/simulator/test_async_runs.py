"""The asynchronous scenarios end to end: files in step with the comparison, reproducible
arrival logs, the accuracy-vs-time comparison, and (slow) the 3-seed reproduction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.engine.runner import run
from simulator.loader import load_scenario
from simulator.studies.compare import accuracy_at_s, load_comparison, run_comparison
from simulator.studies.results import time_to_accuracy_s
from tests.conftest import same_table

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
COMPARISON = SCENARIOS / "comparisons" / "async.yaml"
FILES = {
    "fedasync": "async_fedasync.yaml",
    "fedbuff": "async_fedbuff.yaml",
    "orthofl_paper": "async_orthofl.yaml",
    "fedavg_sync": "async_fedavg_sync.yaml",
}


def _without_name(scenario) -> dict:
    return {k: v for k, v in scenario.model_dump().items() if k != "name"}


@pytest.mark.parametrize("variant", sorted(FILES))
def test_scenario_files_are_the_comparison_variants(variant):
    _, scenarios = load_comparison(COMPARISON)
    from_file = load_scenario(SCENARIOS / FILES[variant], ["seed=1"])
    assert _without_name(from_file) == _without_name(scenarios[variant, 1])


def test_orthofl_code_variant_differs_only_in_the_shift_source():
    _, scenarios = load_comparison(COMPARISON)
    paper, code = scenarios["orthofl_paper", 1], scenarios["orthofl_code", 1]
    assert code.strategy.shift_source == "dispatched_chain"
    assert code.strategy.model_copy(update={"shift_source": "global_ma"}) == paper.strategy


def test_same_seed_gives_the_identical_arrival_log(tmp_path):
    over = ["simulation.max_time_s=4", "devices.count=8"]
    a = run(load_scenario(SCENARIOS / "async_orthofl.yaml", over), out_root=None)
    b = run(load_scenario(SCENARIOS / "async_orthofl.yaml", over), out_root=None)
    assert a.summary["versions"] > 20
    assert same_table(a.events, b.events) and same_table(a.metrics, b.metrics)
    assert same_table(a.devices, b.devices)
    c = run(load_scenario(SCENARIOS / "async_orthofl.yaml", [*over, "seed=2"]), out_root=None)
    assert not same_table(a.events, c.events)


def test_time_to_accuracy_and_accuracy_at_time_by_hand():
    m = pd.DataFrame(
        {
            "time_s": [1.0, 2.0, 3.0, 4.0],
            "accuracy": [0.5, math.nan, 0.86, 0.84],
            "personal_accuracy_mean": [math.nan] * 4,
        }
    )
    assert time_to_accuracy_s(m, 0.85) == 3.0
    assert math.isnan(time_to_accuracy_s(m, 0.9))
    assert accuracy_at_s(m, 2.5) == 0.5  # the last evaluation at or before 2.5 s
    assert accuracy_at_s(m, 3.0) == 0.86
    assert math.isnan(accuracy_at_s(m, 0.5))


def test_accuracy_vs_time_comparison_writes_table_and_figure(tmp_path):
    spec = yaml.safe_load(COMPARISON.read_text())
    spec["base"] = str(SCENARIOS / "async_fedasync.yaml")
    spec["seeds"] = [1]
    spec["target_accuracy"] = 0.3
    spec["at_times_s"] = [1.0, 2.0]
    spec["variants"] = {
        name: {**spec["variants"][name], "simulation.max_time_s": 3.0}
        for name in ("fedasync", "orthofl_code")
    }
    # FedAvg's rounds take ~1.7 s here; four rounds take it past 0.3 (seed 1)
    spec["variants"]["fedavg_sync"] = {"strategy": {"kind": "fedavg"}, "simulation.rounds": 4}
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    table, runs, folder = run_comparison(path, tmp_path / "runs")
    assert list(table.variant) == ["fedasync", "orthofl_code", "fedavg_sync"]
    assert list(runs.status) == ["time_limit", "time_limit", "completed"]
    assert (runs[runs.variant != "fedavg_sync"].virtual_time_s <= 3.0).all()
    t = table.set_index("variant")
    assert t.loc["fedavg_sync", "speedup_vs_reference"] == pytest.approx(1.0)
    assert {"accuracy_at_1s", "accuracy_at_2s", "time_to_target_s", "reached"} <= set(t.columns)
    png = (folder / "comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.slow
def test_reproduction_async_vs_sync_three_seeds(tmp_path):
    """The claims of issue 4 on our setup: 3 seeds, same devices and data (see the closing note
    for the full 60 s table; this runs the first 20 virtual seconds)."""
    spec = yaml.safe_load(COMPARISON.read_text())
    spec["base"] = str(SCENARIOS / "async_fedasync.yaml")
    spec["at_times_s"] = [10.0, 20.0]
    spec["variants"] = {
        name: {**v, "simulation.max_time_s": 20.0} for name, v in spec["variants"].items()
    }
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    table, runs, _ = run_comparison(path, tmp_path / "runs")
    t = table.set_index("variant")
    assert (runs.status == "time_limit").all()
    # OrthoFL as in the reference code is ahead of both baselines at the same virtual time
    for other in ("fedasync", "fedbuff"):
        assert t.loc["orthofl_code", "accuracy_at_10s"] > t.loc[other, "accuracy_at_10s"]
        assert t.loc["orthofl_code", "accuracy_at_20s"] > t.loc[other, "accuracy_at_20s"]
    # asynchronous methods reach the target sooner than synchronous FedAvg
    sync = runs[runs.variant == "fedavg_sync"].time_to_target_s.fillna(np.inf).to_numpy()
    for name in ("fedbuff", "orthofl_code"):
        tta = runs[runs.variant == name].time_to_target_s.to_numpy()
        assert np.isfinite(tta).all() and (tta < sync).all()
