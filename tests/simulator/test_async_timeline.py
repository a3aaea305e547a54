"""Asynchronous arrivals as timed events: exact order, versions and staleness for fixed delays,
and FedBuff reduces to synchronous FedAvg when every device takes the same time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devices.spec import Population
from simulator.engine.runner import simulate_world
from tests.simulator.test_timeline import CPU_HZ, build_world, expected_phases

FEDASYNC = {"kind": "fedasync", "alpha": 0.5, "staleness": {"kind": "constant"}}


def test_arrival_order_versions_and_staleness_by_hand():
    # Every device is redispatched at its own arrival (concurrency = all), so device k arrives
    # at multiples of its own round trip T_k; FedAsync publishes at every arrival.
    periods = [sum(expected_phases(k)) for k in range(3)]
    arrivals = sorted((m * periods[k], k) for k in range(3) for m in range(1, 8))[:10]
    expected, version, base = [], 0, {0: 0, 1: 0, 2: 0}
    for t, k in arrivals:
        expected.append((pytest.approx(t, rel=1e-9), k, version - base[k]))
        version += 1
        base[k] = version  # redispatched with the newest model
    world = build_world({"strategy": FEDASYNC, "simulation.rounds": 10})
    recorder, ctx = simulate_world(world)
    ev = recorder.events_table().to_pandas()
    got = [
        (r.time_s, r.device_id, int(r.duration_s)) for r in ev[ev.event == "arrival"].itertuples()
    ]
    assert got == expected
    assert ctx.version == 10
    assert [m["version"] for m in recorder.metrics] == list(range(1, 11))


def test_concurrency_limit_and_redispatch():
    world = build_world({"strategy": FEDASYNC, "simulation.rounds": 6, "simulation.concurrency": 2})
    recorder, _ = simulate_world(world)
    ev = recorder.events_table().to_pandas().sort_values("time_s", kind="stable")
    running = 0
    for e in ev.itertuples():
        running += (e.event == "downlink_start") - (e.event in ("arrival", "failure"))
        assert running <= 2


def _identical_devices(world):
    # same CPU and distance (different angles): every round trip takes the same time
    world.population = Population(
        cpu_hz=np.full(3, CPU_HZ[0]),
        cycles_per_sample=np.full(3, 1e5),
        tx_power_dbm=np.full(3, 20.0),
        position_m=np.array([[200.0, 0.0], [0.0, 200.0], [-200.0, 0.0]]),
        kappa=np.full(3, 1e-28),
    )
    return world


def test_fedbuff_with_equal_delays_is_synchronous_fedavg():
    common = {"training": {"local_steps": 3, "batch_size": 8, "lr": 0.1}, "simulation.rounds": 3}
    fedavg = _identical_devices(build_world({**common, "strategy": {"kind": "fedavg"}}))
    simulate_world(fedavg)
    fedbuff = _identical_devices(
        build_world(
            {
                **common,
                "strategy": {
                    "kind": "fedbuff",
                    "buffer_size": 3,
                    "server_lr": 1.0,
                    "staleness": {"kind": "constant"},
                    "weighting": "examples",
                },
            }
        )
    )
    recorder, _ = simulate_world(fedbuff)
    initial = build_world(common).global_state
    for k, v in fedavg.global_state.items():
        torch.testing.assert_close(fedbuff.global_state[k], v, rtol=1e-6, atol=1e-6)
        assert not torch.allclose(v, initial[k])  # three rounds of real training happened
    assert [m["mean_staleness"] for m in recorder.metrics] == [0.0, 0.0, 0.0]
