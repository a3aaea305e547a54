"""Asynchronous arrivals as timed events: exact order, versions and staleness for fixed delays,
and FedBuff reduces to synchronous FedAvg when every device takes the same time."""

from __future__ import annotations

import math

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
    # FedAsync publishes at every arrival: each version carries one model upload
    from tests.simulator.test_timeline import BITS

    assert [m["bits_up"] for m in recorder.metrics] == [BITS] * 10


def test_concurrency_limit_and_redispatch():
    world = build_world({"strategy": FEDASYNC, "simulation.rounds": 6, "simulation.concurrency": 2})
    recorder, _ = simulate_world(world)
    ev = recorder.events_table().to_pandas()
    running, most = 0, 0
    for e in ev.itertuples():  # the log is in event order
        running += (e.event == "downlink_start") - (e.event in ("arrival", "failure"))
        most = max(most, running)
    assert most == 2  # the bound is reached, never passed
    # every arrival is followed at the same instant by a dispatch (its slot is refilled)
    arrivals = ev[ev.event == "arrival"]
    for a in arrivals.itertuples():
        later = ev.loc[a.Index + 1 :]
        nxt = later[later.event == "downlink_start"].iloc[0]
        assert nxt.time_s == a.time_s


class OfflineOnce:
    """Device 1 goes offline at ``at_s`` and comes back ``for_s`` later; others never change."""

    def __init__(self, at_s, for_s):
        self.at_s, self.for_s = at_s, for_s

    def initially_online(self, rng, *, device_id):
        return True

    def next_change_s(self, rng, *, device_id, online, now_s):
        if device_id != 1:
            return math.inf
        if online and now_s == 0.0:
            return self.at_s
        return self.for_s if not online else math.inf


def test_async_device_going_offline_fails_its_job_and_is_dispatched_again_when_back():
    periods = [sum(expected_phases(k)) for k in range(3)]
    down_1, compute_1, _ = expected_phases(1)
    offline_at = down_1 + compute_1 / 2  # in the middle of device 1's first computation
    back_at = offline_at + 0.05
    world = build_world(
        {
            "strategy": FEDASYNC,
            "simulation.rounds": 12,
            "devices.availability": {"kind": "markov", "mean_online_s": 1, "mean_offline_s": 1},
        }
    )
    world.availability = OfflineOnce(offline_at, 0.05)
    recorder, ctx = simulate_world(world)
    ev = recorder.events_table().to_pandas()
    dev1 = ev[ev.device_id == 1]
    failure = dev1[dev1.event == "failure"]
    assert failure.time_s.tolist() == [pytest.approx(offline_at, rel=1e-12)]
    assert failure.detail.tolist() == ["offline"] and failure.leg.tolist() == ["train"]
    assert dev1[dev1.event == "offline"].time_s.tolist() == [pytest.approx(offline_at)]
    online = dev1[dev1.event == "online"].time_s.tolist()
    assert online == [pytest.approx(back_at)]
    # dispatched again once back: the next idle check after it comes online is the next
    # arrival of another device (the server refills free slots at arrivals)
    redispatch = dev1[(dev1.event == "downlink_start") & (dev1.time_s > offline_at)]
    others = sorted(m * periods[k] for k in (0, 2) for m in range(1, 20))
    first_after = next(t for t in others if t >= back_at)
    assert redispatch.time_s.iloc[0] == pytest.approx(first_after, rel=1e-9)
    assert ctx.version == 12 and ctx.status == "completed"
    # device 1 delivers again after coming back
    assert (dev1.event == "arrival").sum() >= 1
    assert ctx.device_stats.failures.tolist() == [0, 1, 0]


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
