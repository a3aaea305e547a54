"""Strategy hooks of the round-protocol engine: own model and streams, own metrics columns,
compute cost from counted FLOPs, and one cost model for both engines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fl.protocol import Leg, RoundProtocol
from fl.strategies.fedasync import FedAsync
from fl.strategies.fedavg import FedAvg
from simulator.engine import world as world_module
from simulator.engine.costs import LegCosts, plan_stage
from simulator.engine.runner import simulate_world
from simulator.engine.world import build
from tests.conftest import make_scenario
from tests.simulator.test_timeline import build_world


class Widened(FedAvg):
    """Trains its own model: the scenario's MLP with an extra 10 x 10 layer whose weights come
    from the strategy's seeded generator; reports a metric of its own every round."""

    @classmethod
    def build_model(cls, base, *, config, generator, model_config=None):
        extra = nn.Linear(10, 10)
        with torch.no_grad():
            extra.weight.copy_(torch.randn(10, 10, generator=generator))
        return nn.Sequential(base, extra)

    def round_metrics(self):
        return {"router_draw": float(self.rng("router", 0).uniform())}


@pytest.fixture
def widened(monkeypatch):
    monkeypatch.setattr(world_module, "strategy_class", lambda cfg: Widened)
    monkeypatch.setattr(world_module, "make_strategy", lambda cfg, **kw: Widened())


def test_strategy_builds_its_own_model_from_a_seeded_stream(widened):
    a, b = build(make_scenario()), build(make_scenario())
    other = build(make_scenario({"seed": 2}))
    assert "1.weight" in a.global_state and a.global_state["1.weight"].shape == (10, 10)
    assert torch.equal(a.global_state["1.weight"], b.global_state["1.weight"])
    assert not torch.equal(a.global_state["1.weight"], other.global_state["1.weight"])


def test_own_streams_are_keyed_by_purpose_and_reproducible(widened):
    w = build(make_scenario())
    again = build(make_scenario())
    assert w.strategy.rng("router", 1).uniform() == again.strategy.rng("router", 1).uniform()
    assert w.strategy.rng("router", 1).uniform() != w.strategy.rng("router", 2).uniform()
    # not the stream of anything else in the run (selection draws from "select")
    assert w.strategy.rng("select", 0).uniform() != w.streams.numpy("select", 0).uniform()


def test_round_metrics_become_metrics_columns(widened):
    world = build(make_scenario({"training": {"mode": "none", "local_steps": 2}}))
    recorder, _ = simulate_world(world)
    expected = float(world.strategy.rng("router", 0).uniform())
    assert [row["router_draw"] for row in recorder.metrics] == [expected] * 3


def test_cycles_per_sample_auto_counts_the_trained_models_flops(widened):
    # MLP 64-8-10 then the strategy's 10x10 layer; per sample, FLOPs = 2 per multiply-add,
    # forward + weight gradients, + input gradients for every layer but the first
    flops = 2 * 64 * 8 * 2 + 2 * 8 * 10 * 3 + 2 * 10 * 10 * 3
    world = build(
        make_scenario({"devices.cycles_per_sample": "auto", "devices.cycles_per_flop": 2})
    )
    assert world.population.cycles_per_sample.tolist() == [2.0 * flops] * 4
    assert world.strategy.flops_share(flops / 4) == 0.25


class PerDeviceAsync(FedAsync):
    """An asynchronous strategy whose jobs differ per device: bits and cycle shares."""

    def round_protocol(self, *, global_state, cohort):
        return RoundProtocol.of(
            Leg("down", "downlink", bits=1000.0 * (1 + cohort)),
            Leg("train", "compute", cycle_share=0.5 + 0.25 * cohort),
            Leg("up", "uplink", bits=3000.0 / (1 + cohort)),
        )


def test_async_jobs_cost_what_the_synchronous_planner_says():
    world = build_world({"strategy": {"kind": "fedasync"}, "simulation.rounds": 10})
    strategy = PerDeviceAsync(alpha=0.5)
    strategy.bits_per_param = 32
    world.strategy = strategy
    recorder, _ = simulate_world(world)
    ev = recorder.events_table().to_pandas()
    first = ev[ev.time_s == 0.0]
    got = {(r.device_id, r.leg): r.duration_s for r in first.itertuples() if r.leg == "down"}
    cohort = np.arange(3)
    protocol = strategy.round_protocol(global_state=world.global_state, cohort=cohort)
    sync = plan_stage(
        world, LegCosts(world), protocol, 0, cohort, np.ones(3, bool), 0.0, job_idx=0
    )  # synchronous: equal-share allocator, one sub-band per receiver
    for k in range(3):
        assert got[(k, "down")] == sync.duration_s[0, k]
        mine = ev[ev.device_id == k]
        compute = mine[mine.event == "compute_start"].duration_s.iloc[0]
        upload = mine[mine.event == "uplink_start"].duration_s.iloc[0]
        assert (compute, upload) == (sync.duration_s[1, k], sync.duration_s[2, k])
    assert sync.duration_s[1].tolist() == [
        (0.5 + 0.25 * k) * 1e5 * 16 / f for k, f in enumerate([1e8, 2e8, 5e7])
    ]
