"""Round protocols: multi-stage rounds, device-to-device legs and downlink modes, timed by hand.

Prepare: the three devices of ``test_timeline`` (chosen CPUs and positions, no fading, no
shadowing, equal-share uplink) and small strategies whose protocols have barriers and D2D legs.
Execute: run the SimPy processes. Assert: every leg's start and end, barriers, bits and energy
against the textbook formulas written out here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from channels.factory import make_d2d_link
from fl.protocol import Barrier, Leg, RoundProtocol
from fl.strategies.fedavg import FedAvg
from simulator.engine.costs import LegCosts
from simulator.engine.runner import simulate_world
from simulator.engine.world import check_protocol_needs
from simulator.errors import ScenarioError
from tests.conftest import make_scenario
from tests.simulator.test_timeline import (
    CPU_HZ,
    DL_HZ,
    NOISE_DBM_HZ,
    POSITIONS_M,
    SERVER_DBM,
    TX_DBM,
    UL_HZ,
    build_world,
)

FULL_JOB_S = [1e5 * 2 * 8 / f for f in CPU_HZ]  # cycles/sample * steps * batch / cpu_hz
DIST_M = [math.dist((0, 0), p) for p in POSITIONS_M]


def rate_bps(bandwidth_hz, tx_w, gain):
    noise_w = 10 ** ((NOISE_DBM_HZ - 30) / 10) * bandwidth_hz
    return bandwidth_hz * math.log2(1 + tx_w * gain / noise_w)


def macro_gain(d_m):
    return 10 ** (-(128.1 + 37.6 * math.log10(d_m / 1000.0)) / 10)


def watts(dbm):
    return 10 ** ((dbm - 30) / 10)


def down_s(bits, k, n):
    """Unicast downlink: n sub-bands of DL/n, the server's power split in n."""
    return bits / rate_bps(DL_HZ / n, watts(SERVER_DBM) / n, macro_gain(DIST_M[k]))


def up_s(bits, k, n):
    """Equal-share uplink among the n senders of the leg."""
    return bits / rate_bps(UL_HZ / n, watts(TX_DBM), macro_gain(DIST_M[k]))


class ThreeStages(FedAvg):
    """Two barriers inside a round (FeDLRT with full variance correction has this shape)."""

    def round_protocol(self, *, global_state, cohort):
        return RoundProtocol.of(
            Leg("basis_down", "downlink", bits=1000),
            Leg("grads", "compute", cycle_share=0.5),
            Leg("grads_up", "uplink", bits=np.array([2000, 3000, 4000])),
            Barrier("augment"),
            Leg("dirs_down", "downlink", bits=500),
            Leg("coeff", "compute", cycle_share=0.25),
            Leg("coeff_up", "uplink", bits=800),
            Barrier("truncate"),
            Leg("extra_up", "uplink", bits=600, participants=np.array([True, True, False])),
        )


def stage_ends():
    a = [
        down_s(1000, k, 3) + 0.5 * FULL_JOB_S[k] + up_s([2000, 3000, 4000][k], k, 3)
        for k in range(3)
    ]
    b = [down_s(500, k, 3) + 0.25 * FULL_JOB_S[k] + up_s(800, k, 3) for k in range(3)]
    c = [up_s(600, k, 2) for k in range(2)]
    end_a = max(a)
    end_b = end_a + max(b)
    return a, b, c, end_a, end_b, end_b + max(c)


def with_strategy(world, strategy):
    strategy.bits_per_param = world.strategy.bits_per_param
    world.strategy = strategy
    return world


def events(recorder):
    return recorder.events_table().to_pandas()


def test_two_barriers_every_leg_by_hand():
    world = with_strategy(build_world({"simulation.rounds": 1}), ThreeStages())
    recorder, ctx = simulate_world(world)
    ev = events(recorder)
    a, b, c, end_a, end_b, end_c = stage_ends()
    for k in range(3):
        mine = ev[ev.device_id == k]
        leg_starts = mine[mine.event.str.endswith("_start")]
        starts = dict(zip(leg_starts.leg, leg_starts.time_s, strict=True))
        t = 0.0
        legs = [
            ("basis_down", down_s(1000, k, 3)),
            ("grads", 0.5 * FULL_JOB_S[k]),
            ("grads_up", up_s([2000, 3000, 4000][k], k, 3)),
        ]
        for name, dur in legs:
            assert starts[name] == pytest.approx(t, rel=1e-9, abs=1e-15), name
            t += dur
        t = end_a
        for name, dur in [
            ("dirs_down", down_s(500, k, 3)),
            ("coeff", 0.25 * FULL_JOB_S[k]),
            ("coeff_up", up_s(800, k, 3)),
        ]:
            assert starts[name] == pytest.approx(t, rel=1e-9), name
            t += dur
        if k < 2:
            assert starts["extra_up"] == pytest.approx(end_b, rel=1e-9)
        else:
            assert "extra_up" not in starts  # not a participant of the last stage
        done = mine[mine.event == "upload_done"].time_s.tolist()
        expected_done = [a[k], end_a + b[k]] + ([end_b + c[k]] if k < 2 else [])
        assert done == pytest.approx(expected_done, rel=1e-9)
    server = ev[ev.device_id == -1]
    barriers = server[server.event == "barrier"]
    assert barriers.detail.tolist() == ["augment", "truncate"]
    assert barriers.time_s.tolist() == pytest.approx([end_a, end_b], rel=1e-9)
    row = recorder.metrics[0]
    assert row["round_latency_s"] == pytest.approx(end_c, rel=1e-9)
    # the critical path: the slowest device of each stage, leg by leg
    ka, kb, kc = int(np.argmax(a)), int(np.argmax(b)), int(np.argmax(c))
    assert row["leg_grads_up_s"] == pytest.approx(up_s([2000, 3000, 4000][ka], ka, 3), rel=1e-9)
    assert row["leg_coeff_s"] == pytest.approx(0.25 * FULL_JOB_S[kb], rel=1e-9)
    assert row["leg_extra_up_s"] == pytest.approx(c[kc], rel=1e-9)
    assert row["downlink_s"] == pytest.approx(down_s(1000, ka, 3) + down_s(500, kb, 3), rel=1e-9)
    assert row["wait_s"] == pytest.approx(0.0, abs=1e-12)
    assert row["bits_up"] == 2000 + 3000 + 4000 + 3 * 800 + 2 * 600
    assert row["bits_down"] == 3 * 1000 + 3 * 500
    assert (row["n_delivered"], row["n_failed"]) == (3, 0)
    stats = ctx.device_stats
    assert stats.jobs.tolist() == [1, 1, 1] and stats.updates.tolist() == [1, 1, 1]
    assert stats.bits_up.tolist() == [2000 + 800 + 600, 3000 + 800 + 600, 4000 + 800]


def test_deadline_inside_the_second_stage_stops_the_round_there():
    a, b, _, end_a, _, _ = stage_ends()
    ranked = sorted(b)
    deadline = end_a + (ranked[1] + ranked[2]) / 2  # the slowest of stage b is cut
    world = build_world({"simulation.rounds": 1, "simulation.deadline_s": deadline})
    recorder, _ = simulate_world(with_strategy(world, ThreeStages()))
    ev = events(recorder)
    failures = ev[ev.event == "failure"]
    slowest = int(np.argmax(b))
    # the slowest is interrupted inside its coefficient upload, the others have no time left
    # for the last stage: everyone fails at the deadline (events at one instant are in
    # canonical order, by device)
    assert failures.device_id.tolist() == [0, 1, 2]
    assert failures.time_s.tolist() == pytest.approx([deadline] * 3, rel=1e-9)
    assert failures.detail.tolist() == ["deadline"] * 3
    # which leg the deadline cuts, from the slowest device's leg ends in stage b; the others
    # fail at the barrier, before any leg of the last stage
    coeff_ends = end_a + down_s(500, slowest, 3) + 0.25 * FULL_JOB_S[slowest]
    legs = dict(zip(failures.device_id, failures.leg, strict=True))
    assert legs.pop(slowest) == ("coeff" if deadline < coeff_ends else "coeff_up")
    assert set(legs.values()) == {""}
    row = recorder.metrics[0]
    assert row["round_latency_s"] == pytest.approx(deadline, rel=1e-9)
    assert (row["n_delivered"], row["n_failed"]) == (0, 3)
    # the uploads of stage a and the finished ones of stage b still count
    assert row["bits_up"] == 2000 + 3000 + 4000 + 2 * 800


D2D = {
    "pathloss": {
        "kind": "log_distance",
        "exponent": 3.0,
        "ref_loss_db": 40.0,
        "shadowing_std_db": 0.0,
    },
    "fading": {"kind": "none"},
    "band": {"kind": "dedicated", "bandwidth_hz": 1e6},
}


class Relay(FedAvg):
    """Members 1 and 2 relay their model to device 0 over D2D; device 0 alone uploads."""

    uses_d2d = True

    def round_protocol(self, *, global_state, cohort):
        members = cohort != cohort[0]
        return RoundProtocol.of(
            Leg("model_down", "downlink", bits=1000),
            Leg("train", "compute"),
            Leg("to_head", "d2d", bits=5000, participants=members, receivers=np.zeros(3, int)),
            Barrier("relay"),
            Leg("head_up", "uplink", bits=5000, participants=~members),
        )


def relay_world(rounds=1):
    """The timeline world with the Relay strategy and channel.d2d (injected after building:
    FedAvg, which the scenario names, sends no D2D traffic)."""
    world = with_strategy(build_world({"simulation.rounds": rounds}), Relay())
    with_d2d = make_scenario({"channel.d2d": D2D}).channel
    world.scenario = world.scenario.model_copy(
        update={
            "channel": world.scenario.channel.model_copy(update={"d2d": with_d2d.d2d}),
        }
    )
    world.d2d = make_d2d_link(world.scenario.channel, world.streams.integer("channel"))
    return world


def d2d_s(k):
    d = math.dist(POSITIONS_M[k], POSITIONS_M[0])
    gain = 10 ** (-(40.0 + 30.0 * math.log10(d)) / 10)
    return 5000 / rate_bps(1e6 / 2, watts(TX_DBM), gain)


def test_d2d_leg_from_the_pair_rate_by_hand():
    recorder, ctx = simulate_world(relay_world())
    ev = events(recorder)
    stage1 = [down_s(1000, k, 3) + FULL_JOB_S[k] + (d2d_s(k) if k else 0.0) for k in range(3)]
    for k in (1, 2):
        start = ev[(ev.device_id == k) & (ev.event == "d2d_start")]
        assert start.time_s.item() == pytest.approx(stage1[k] - d2d_s(k), rel=1e-9)
        assert start.duration_s.item() == pytest.approx(d2d_s(k), rel=1e-9)
        assert start.bandwidth_hz.item() == 5e5
        done = ev[(ev.device_id == k) & (ev.event == "d2d_done")]
        assert done.time_s.item() == pytest.approx(stage1[k], rel=1e-9)
    assert ev[(ev.device_id == 0) & (ev.event == "compute_done")].time_s.item() == pytest.approx(
        stage1[0], rel=1e-9
    )
    head_up = 5000 / rate_bps(UL_HZ, watts(TX_DBM), macro_gain(DIST_M[0]))
    row = recorder.metrics[0]
    assert row["round_latency_s"] == pytest.approx(max(stage1) + head_up, rel=1e-9)
    assert row["bits_d2d"] == 10000 and row["bits_up"] == 5000
    crit = int(np.argmax(stage1))
    assert row["d2d_s"] == pytest.approx(d2d_s(crit) if crit else 0.0, rel=1e-9)
    # transmit energy: P_tx * (d2d time + upload time)
    assert row["energy_tx_j"] == pytest.approx(
        watts(TX_DBM) * (d2d_s(1) + d2d_s(2) + head_up), rel=1e-9
    )
    assert ctx.device_stats.bits_d2d.tolist() == [0, 5000, 5000]


def test_broadcast_downlink_runs_at_the_weakest_receivers_rate():
    world = build_world({"channel.downlink": {"mode": "broadcast"}, "simulation.rounds": 1})
    recorder, _ = simulate_world(world)
    ev = events(recorder)
    bits = 32 * (64 * 8 + 8 + 8 * 10 + 10)
    weakest = min(macro_gain(d) for d in DIST_M)
    expected = bits / (
        DL_HZ
        * math.log2(1 + watts(SERVER_DBM) * weakest / (1e-3 * 10 ** (NOISE_DBM_HZ / 10) * DL_HZ))
    )
    got = ev[ev.event == "downlink_start"].duration_s.tolist()
    assert got == pytest.approx([expected] * 3, rel=1e-12)


def test_unicast_sub_band_powers_sum_to_the_server_power():
    world = build_world()
    costs = LegCosts(world)
    ids = np.arange(3)
    bits = np.full(3, 1e6)
    duration, band = costs.downlink_s(ids, bits, 0.0, slots=3)
    # invert each sub-band's Shannon rate to the power the server put into it
    snr = 2 ** (bits / duration / band) - 1
    noise_w = 10 ** ((NOISE_DBM_HZ - 30) / 10) * band
    power_w = snr * noise_w / np.array([macro_gain(d) for d in DIST_M])
    assert band == DL_HZ / 3
    assert power_w.sum() == pytest.approx(watts(SERVER_DBM), rel=1e-9)


def test_d2d_settings_and_strategies_must_match():
    with_d2d = make_scenario({"channel.d2d": D2D})
    world = build_world()
    with pytest.raises(ScenarioError) as plain:
        check_protocol_needs(with_d2d, world.strategy, world.global_state, "s.yaml")
    assert str(plain.value) == (
        "s.yaml: channel.d2d: expected no d2d settings: strategy 'fedavg' sends no "
        "device-to-device traffic, found a d2d section"
    )
    with pytest.raises(ScenarioError) as relay:
        check_protocol_needs(world.scenario, Relay(), world.global_state, "s.yaml")
    assert str(relay.value) == (
        "s.yaml: channel.d2d: expected d2d settings (strategy 'fedavg' relays between "
        "devices), found none"
    )


def test_a_round_recomputed_by_hand_from_devices_parquet(tmp_path):
    """Everything a reader needs is in devices.parquet: position, path loss with shadowing,
    CPU, cycles and power give round 0's latency exactly."""
    from simulator.engine.runner import run

    scenario = make_scenario(
        {
            "channel.pathloss": {"kind": "macro_3gpp", "shadowing_std_db": 6.0},
            "training.mode": "none",
        }
    )
    result = run(scenario, out_root=tmp_path)
    table = pd.read_parquet(result.out_dir / "devices.parquet")
    assert np.allclose(np.hypot(table.x_m, table.y_m), table.distance_m)
    bits = 32 * (64 * 8 + 8 + 8 * 10 + 10)
    n, dl_hz, ul_hz = 4, 4e6, 1e6
    noise_w_per_hz = 10 ** ((-174 - 30) / 10)
    totals = []
    for d in table.itertuples():
        gain = 10 ** (-d.pathloss_db / 10)
        snr_dl = (watts(43.0) / n) * gain / (noise_w_per_hz * dl_hz / n)
        snr_ul = watts(d.tx_power_dbm) * gain / (noise_w_per_hz * ul_hz / n)
        down = bits / (dl_hz / n * math.log2(1 + snr_dl))
        compute = d.cycles_per_sample * 2 * 8 / d.cpu_hz
        up = bits / (ul_hz / n * math.log2(1 + snr_ul))
        totals.append(down + compute + up)
    row = result.metrics.to_pylist()[0]
    assert row["round_latency_s"] == pytest.approx(max(totals), rel=1e-9)
    assert table.bits_up.tolist() == [3 * bits] * 4 and table.bits_d2d.tolist() == [0] * 4
    # shadowing is in the path loss column: not the bare 128.1 + 37.6 log10(d_km)
    bare = 128.1 + 37.6 * np.log10(table.distance_m / 1000)
    assert not np.allclose(bare, table.pathloss_db)


@pytest.mark.parametrize(
    ("setting", "field", "line"),
    [
        (
            "channel: {d2d: {band: {kind: dedicated, bandwidth_hz: 1.0e6}}}",
            "channel.d2d",
            "channel.d2d: expected no d2d settings: strategy 'fedavg' sends no "
            "device-to-device traffic, found a d2d section",
        ),
        (
            "channel: {downlink: {mode: broadcast}}\nstrategy: {kind: fedasync}",
            "channel.downlink.mode",
            "channel.downlink.mode: expected unicast with an asynchronous strategy (each "
            "dispatch is its own transmission), found 'broadcast'",
        ),
    ],
)
def test_protocol_settings_that_cannot_work_exit_2(tmp_path, setting, field, line):

    import yaml

    from tests.conftest import TINY, run_wedge

    base = {k: v for k, v in TINY.items() if k not in ("channel", "strategy")}
    path = tmp_path / "bad.yaml"
    strategy = "" if "strategy" in setting else "\nstrategy: {kind: fedavg}"
    path.write_text(yaml.safe_dump(base) + setting + strategy + "\n")
    for command in (["validate"], ["run", "--out", str(tmp_path / "o")]):
        out = run_wedge(*command, str(path))
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip() == f"{path}: {line}", out.stderr
        assert not (tmp_path / "o").exists()
