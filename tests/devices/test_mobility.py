"""Mobility: positions move in virtual time, stay in the area, and path loss follows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from devices.mobility import Area, ConstantVelocity, RandomWaypoint
from devices.spec import Population
from simulator.engine.runner import simulate_world
from simulator.engine.world import build
from tests.conftest import make_scenario

START_M = np.array([[100.0, 0.0], [0.0, 200.0], [-50.0, 0.0], [0.0, -300.0]])


def moving_world(mobility, extra=None):
    scenario = make_scenario(
        {
            "devices.mobility": mobility,
            "devices.placement": {"kind": "disc", "radius_m": 1000},
            "training.mode": "none",
            "simulation.rounds": 1000,
            "simulation.max_time_s": 3.2,
            **(extra or {}),
        }
    )
    world = build(scenario)
    pop = world.population
    world.population = Population(
        pop.cpu_hz, pop.cycles_per_sample, pop.tx_power_dbm, START_M.copy(), pop.kappa
    )
    return world


def test_a_constant_velocity_device_moves_as_worked_out_by_hand():
    # everyone heads east at 2 m/s; positions update every 0.5 s
    mobility = {"kind": "constant_velocity", "speed_mps": [2, 2], "heading_deg": 0,
                "update_s": 0.5}  # fmt: skip
    world = moving_world(mobility)
    recorder, ctx = simulate_world(world)
    ev = recorder.events_table().to_pandas()
    updates = ev[ev.event == "positions"]
    assert updates.time_s.tolist() == pytest.approx([0.5 * k for k in range(1, 7)])
    for t, mean in zip(updates.time_s, updates.duration_s, strict=True):
        moved = START_M + np.array([2.0 * t, 0.0])
        assert mean == pytest.approx(np.hypot(moved[:, 0], moved[:, 1]).mean(), rel=1e-12)
    # device 0 by hand at the end (3.0 s): from 100 m to 106 m east
    assert world.population.distance_m[0] == pytest.approx(106.0)
    # path loss follows: the gains the engine plans with are those of the moved positions
    moved_gain = world.uplink.static_gain(
        link_ids=np.arange(4),
        distance_m=START_M[:, 0] * 0 + np.hypot(START_M[:, 0] + 6.0, START_M[:, 1]),
    )
    np.testing.assert_allclose(ctx.costs.static_ul, moved_gain, rtol=1e-12)
    # a round's metrics carry the mean distance of its publish instant
    rows = recorder.metrics
    assert all(r["mean_distance_m"] > 0 for r in rows)


def test_devices_reflect_at_the_edge_and_stay_inside():
    area = Area(radius_m=100.0)
    model = ConstantVelocity(area, np.array([[10.0, 0.0]]))
    position = np.array([[95.0, 0.0]])
    position = model.advance(position, 1.0)  # would reach 105 m: reflected to 95 m
    assert position.tolist() == [[95.0, 0.0]] and model.velocity_mps.tolist() == [[-10.0, 0.0]]
    square = Area(side_m=20.0)
    walker = RandomWaypoint(square, (1.0, 5.0), np.random.default_rng(0))
    walker.start(50)
    pos = square.uniform(50, np.random.default_rng(1))
    for _ in range(500):
        pos = walker.advance(pos, 0.7)
        assert np.all(np.abs(pos) <= 10.0 + 1e-9)


def test_random_waypoint_changes_path_loss_and_keeps_the_run_reproducible():
    mobility = {"kind": "random_waypoint", "speed_mps": [5, 10]}
    extra = {"channel.fading": {"kind": "rayleigh", "coherence_s": 0.25}}
    first = moving_world(mobility, extra)
    rec_a, _ = simulate_world(first)
    rec_b, _ = simulate_world(moving_world(mobility, extra))
    a, b = rec_a.events_table().to_pandas(), rec_b.events_table().to_pandas()
    assert a.equals(b)
    updates = a[a.event == "positions"]
    # block boundaries of the fading: every 0.25 s
    assert updates.time_s.tolist() == pytest.approx([0.25 * k for k in range(1, 13)])
    assert updates.duration_s.nunique() == len(updates)  # the devices really move
    assert np.all(first.population.distance_m <= 1000.0 + 1e-9)
    assert not math.isclose(updates.duration_s.iloc[0], updates.duration_s.iloc[-1])
