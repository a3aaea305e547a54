"""Stages run as arrays give exactly what one SimPy process per device gives: the same events
(field by field, once both logs are in canonical order), the same metrics and the same device
counters, on scenarios with deadlines, Markov availability and multi-leg protocols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.engine.recorder import canonical_order
from simulator.engine.runner import run
from tests.conftest import make_scenario

FADING = {"kind": "rayleigh", "coherence_s": 0.01}
MARKOV = {"kind": "markov", "mean_online_s": 0.05, "mean_offline_s": 0.02}

SCENARIOS = {
    "deadline": {"devices.count": 12, "simulation.rounds": 6, "channel.fading": FADING,
                 "simulation.deadline_s": 0.03},
    "markov_availability": {"devices.count": 12, "simulation.rounds": 8,
                            "channel.fading": FADING, "devices.availability": MARKOV},
    "markov_and_deadline": {"devices.count": 16, "simulation.rounds": 8, "channel.fading": FADING,
                            "devices.availability": MARKOV, "simulation.deadline_s": 0.012,
                            "strategy.clients_per_round": 6},
    "fedlrt_three_stages": {"devices.count": 6, "simulation.rounds": 3, "channel.fading": FADING,
                            "model.low_rank": {"rank": 2, "r_max": 4},
                            "strategy": {"kind": "fedlrt", "variance_correction": "full"},
                            "simulation.deadline_s": 0.5, "devices.availability": MARKOV},
    "coalition_d2d_relays": {"devices.count": 8, "simulation.rounds": 4, "channel.fading": FADING,
                             "channel.d2d": {}, "devices.availability": MARKOV,
                             "strategy": {"kind": "coalitions", "coalitions": 2,
                                          "communication": "head_d2d",
                                          "reform": {"every_rounds": 2}}},
    "joint_pruning": {"devices.count": 8, "simulation.rounds": 3, "channel.fading": FADING,
                      "strategy": {"kind": "pruned_personalized"},
                      "channel.allocator": {"kind": "joint_pruning", "t_max_s": 0.05}},
    "systems_only_cells": {"devices.count": 30, "simulation.rounds": 4, "training.mode": "none",
                           "cells": {"count": 3, "backhaul_bps": 1e6},
                           "devices.availability": MARKOV, "simulation.deadline_s": 0.05},
}  # fmt: skip


def canonical(table) -> pd.DataFrame:
    e = table.to_pandas()
    e = e.astype({k: str for k in ("event", "detail", "leg")})
    order = canonical_order(
        e.time_s.to_numpy(), e.event.to_numpy(object), e.device_id.to_numpy(), e["round"].to_numpy()
    )
    return e.iloc[order].reset_index(drop=True)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_arrays_and_processes_give_the_same_run(name):
    over = SCENARIOS[name]
    bulk = run(make_scenario(over), out_root=None)
    procs = run(make_scenario({**over, "simulation.device_jobs": "processes"}), out_root=None)
    a, b = canonical(bulk.events), canonical(procs.events)
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert bulk.metrics.to_pandas().equals(procs.metrics.to_pandas())
    assert bulk.devices.to_pandas().equals(procs.devices.to_pandas())
    # the scenario really exercises what it is named for
    events = a.event.value_counts()
    if "deadline" in name:
        assert (a.detail == "deadline").any()
    if "markov" in name or name in ("fedlrt_three_stages", "coalition_d2d_relays"):
        assert events.get("offline", 0) > 0
    assert bulk.summary["status"] == procs.summary["status"]


def test_markov_availability_interrupts_running_jobs():
    over = SCENARIOS["markov_and_deadline"]
    e = canonical(run(make_scenario(over), out_root=None).events)
    offline = e[(e.event == "failure") & (e.detail == "offline")]
    assert len(offline) > 0
    # every interruption is at the instant its device went offline
    went = e[e.event == "offline"].set_index(["device_id", "time_s"]).index
    assert all((d, t) in went for d, t in zip(offline.device_id, offline.time_s, strict=True))
    assert np.isfinite(offline.time_s).all()
