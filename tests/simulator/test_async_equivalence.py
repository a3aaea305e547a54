"""Asynchronous jobs run as chained events, planned from a per-block population plan, give
exactly what one SimPy process per job, each dispatch planned on its own, gives
(``simulation.device_jobs: processes``): the same event log row by row (no reordering
needed: both record in SimPy's processing order), the same metrics and device counters. The
scenarios interrupt jobs in every leg (Markov availability), cancel transfers on the re-shared
uplink, move devices (new static gains mid-block), stop at a time limit with jobs in flight,
and train real models (OrthoFL's per-device starting models)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simulator.engine import dispatch_plans
from simulator.engine.runner import run
from tests.conftest import make_scenario

FADING = {"kind": "rayleigh", "coherence_s": 0.05}
MARKOV = {"kind": "markov", "mean_online_s": 0.3, "mean_offline_s": 0.1}
SYSTEMS = {"training.mode": "none", "devices.count": 120, "channel.fading": FADING,
           "devices.availability": MARKOV, "strategy": {"kind": "fedasync"}}  # fmt: skip

SCENARIOS = {
    "reshare_markov": {**SYSTEMS, "simulation.rounds": 600,
                       "simulation.uplink_sharing": "reshare"},
    "reshare_concurrency_time_limit": {**SYSTEMS, "simulation.rounds": 10**6,
                                       "simulation.max_time_s": 0.4,
                                       "simulation.uplink_sharing": "reshare",
                                       "simulation.concurrency": 40},
    "fedbuff_slots_moving": {**SYSTEMS, "simulation.rounds": 80,
                             "strategy": {"kind": "fedbuff", "buffer_size": 5},
                             "devices.mobility": {"kind": "random_waypoint",
                                                  "speed_mps": [20.0, 40.0],
                                                  "update_s": 0.02}},
    "orthofl_training": {"devices.count": 6, "simulation.rounds": 12,
                         "channel.fading": FADING, "devices.availability": MARKOV,
                         "strategy": {"kind": "orthofl"}},
}  # fmt: skip


def both(over: dict):
    chained = run(make_scenario(over), out_root=None)
    processes = run(make_scenario({**over, "simulation.device_jobs": "processes"}), out_root=None)
    return chained, processes


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_chained_jobs_and_processes_give_the_same_run(name):
    chained, processes = both(SCENARIOS[name])
    a, b = chained.events.to_pandas(), processes.events.to_pandas()
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert chained.metrics.to_pandas().equals(processes.metrics.to_pandas())
    assert chained.devices.to_pandas().equals(processes.devices.to_pandas())
    assert chained.summary["status"] == processes.summary["status"]
    # the scenario exercises what it is named for
    failed_in = set(a.leg[a.event == "failure"].astype(str))
    if "markov" in name:
        assert {"model_down", "train", "model_up"} <= failed_in
    if "time_limit" in name:
        assert chained.summary["status"] == "time_limit"
    if "moving" in name:
        assert (a.event == "positions").sum() > 5


def test_population_plans_are_used_and_match_one_by_one_plans(monkeypatch):
    """At the default threshold the 120-device runs above plan whole blocks; forcing one-by-one
    plans (a threshold above the population) gives the same run."""
    over = SCENARIOS["reshare_markov"]
    made = []
    real = dispatch_plans.DispatchPlans._plan

    def counting(self, protocol, ids, now_s, *, job_idx):
        made.append(ids.size)
        return real(self, protocol, ids, now_s, job_idx=job_idx)

    monkeypatch.setattr(dispatch_plans.DispatchPlans, "_plan", counting)
    tables = run(make_scenario(over), out_root=None)
    assert made.count(120) >= 3  # population plans, one per busy block
    monkeypatch.setattr(dispatch_plans, "_TABLE_AFTER_FRACTION", 2.0)
    made.clear()
    one_by_one = run(make_scenario(over), out_root=None)
    assert 120 not in made[1:]  # only the first dispatch (everyone at t = 0) is that large
    pd.testing.assert_frame_equal(
        tables.events.to_pandas(), one_by_one.events.to_pandas(), check_exact=True
    )


def test_a_long_row_of_one_value_repeats_one_float():
    """Stage tables of whole populations keep one float object per constant row (bits and
    bands of equal slots, nan for compute legs); values are those of ``tolist()``."""
    from simulator.engine.processes import _rows

    values = np.array([np.full(100, 3.5), np.full(100, np.nan), np.arange(100.0)])
    rows = _rows(values)
    assert rows[0] == [3.5] * 100 and len({id(v) for v in rows[0]}) == 1
    assert all(math.isnan(v) for v in rows[1]) and len({id(v) for v in rows[1]}) == 1
    assert rows[2] == values[2].tolist() and len({id(v) for v in rows[2]}) == 100
    short = np.full((2, 5), 1.0)
    assert _rows(short) == short.tolist()
