"""Whole timelines of synchronous rounds against latencies worked out by hand.

Prepare: three devices with chosen CPUs and positions, no fading or shadowing, equal-share
uplink, so every phase duration follows from the textbook formulas written out below.
Execute: run the SimPy processes. Assert: every event time, round latency and failure.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from devices.spec import Population
from simulator.engine.runner import simulate_world
from simulator.engine.world import build
from tests.conftest import make_scenario

CPU_HZ = [1e8, 2e8, 5e7]
POSITIONS_M = [(100.0, 0.0), (0.0, 200.0), (300.0, 400.0)]  # distances 100, 200, 500 m
TX_DBM, SERVER_DBM, NOISE_DBM_HZ = 20.0, 43.0, -174.0
UL_HZ, DL_HZ = 1.2e6, 3e6
CYCLES_PER_SAMPLE, STEPS, BATCH = 1e5, 2, 8
PARAMS = 64 * 8 + 8 + 8 * 10 + 10  # MLP 64 -> 8 -> 10
BITS = 32 * PARAMS


def _rate_bps(bandwidth_hz, tx_dbm, distance_m, power_share=1.0):
    loss_db = 128.1 + 37.6 * math.log10(distance_m / 1000.0)
    signal_w = power_share * 10 ** ((tx_dbm - 30) / 10) * 10 ** (-loss_db / 10)
    noise_w = 10 ** ((NOISE_DBM_HZ - 30) / 10) * bandwidth_hz
    return bandwidth_hz * math.log2(1 + signal_w / noise_w)


def expected_phases(k):
    d = math.dist((0, 0), POSITIONS_M[k])
    # unicast: three sub-bands, the server's power split equally across them
    downlink = BITS / _rate_bps(DL_HZ / 3, SERVER_DBM, d, power_share=1 / 3)
    compute = CYCLES_PER_SAMPLE * STEPS * BATCH / CPU_HZ[k]
    uplink = BITS / _rate_bps(UL_HZ / 3, TX_DBM, d)
    return downlink, compute, uplink


def build_world(overrides=None):
    cfg = {
        "devices.count": 3,
        "channel.uplink_bandwidth_hz": UL_HZ,
        "channel.downlink_bandwidth_hz": DL_HZ,
        "channel.server_tx_power_dbm": SERVER_DBM,
        "training": {"mode": "none", "local_steps": STEPS, "batch_size": BATCH},
        "simulation.rounds": 2,
        **(overrides or {}),
    }
    world = build(make_scenario(cfg))
    world.population = Population(
        cpu_hz=np.array(CPU_HZ),
        cycles_per_sample=np.full(3, CYCLES_PER_SAMPLE),
        tx_power_dbm=np.full(3, TX_DBM),
        position_m=np.array(POSITIONS_M),
        kappa=np.full(3, 1e-28),
    )
    return world


def events_of(recorder, device_id, round_idx):
    ev = recorder.events_table().to_pylist()
    return {
        e["event"]: e["time_s"]
        for e in ev
        if e["device_id"] == device_id and e["round"] == round_idx
    }


def test_round_latency_is_the_slowest_device_and_rounds_chain():
    recorder, ctx = simulate_world(build_world())
    totals = [sum(expected_phases(k)) for k in range(3)]
    round_s = max(totals)
    for rnd, start in [(0, 0.0), (1, round_s)]:
        for k in range(3):
            dl, cmp, ul = expected_phases(k)
            ev = events_of(recorder, k, rnd)
            assert ev["downlink_start"] == pytest.approx(start, abs=1e-12)
            assert ev["compute_start"] == pytest.approx(start + dl, rel=1e-9)
            assert ev["uplink_start"] == pytest.approx(start + dl + cmp, rel=1e-9)
            assert ev["upload_done"] == pytest.approx(start + dl + cmp + ul, rel=1e-9)
    rows = recorder.metrics
    assert [r["version"] for r in rows] == [1, 2]
    assert rows[0]["round_latency_s"] == pytest.approx(round_s, rel=1e-9)
    assert rows[1]["time_s"] == pytest.approx(2 * round_s, rel=1e-9)
    slowest = int(np.argmax(totals))
    dl, cmp, ul = expected_phases(slowest)
    assert (rows[0]["downlink_s"], rows[0]["compute_s"], rows[0]["uplink_s"]) == pytest.approx(
        (dl, cmp, ul), rel=1e-9
    )
    assert rows[0]["wait_s"] == pytest.approx(0.0, abs=1e-12)
    assert rows[0]["bits_up"] == rows[0]["bits_down"] == 3 * BITS
    assert ctx.status == "completed"


def test_deadline_interrupts_stragglers_and_closes_the_round():
    totals = sorted(sum(expected_phases(k)) for k in range(3))
    deadline = (totals[1] + totals[2]) / 2  # between the second and the slowest device
    recorder, _ = simulate_world(build_world({"simulation.deadline_s": deadline}))
    slowest = int(np.argmax([sum(expected_phases(k)) for k in range(3)]))
    ev = recorder.events_table().to_pylist()
    failures = [e for e in ev if e["event"] == "failure" and e["round"] == 0]
    assert [(e["device_id"], e["detail"]) for e in failures] == [(slowest, "deadline")]
    assert failures[0]["time_s"] == pytest.approx(deadline)
    row = recorder.metrics[0]
    assert row["round_latency_s"] == pytest.approx(deadline)
    assert (row["n_delivered"], row["n_failed"]) == (2, 1)
    assert row["wait_s"] == pytest.approx(deadline - totals[1], rel=1e-9)
    assert row["bits_up"] == 2 * BITS
    # round 1 starts exactly at the deadline
    assert events_of(recorder, 0, 1)["downlink_start"] == pytest.approx(deadline)


class ScriptedAvailability:
    """Device 1 goes offline 'offline_at_s' after the start, and back 1 s later."""

    def __init__(self, offline_at_s):
        self.offline_at_s = offline_at_s

    def initially_online(self, rng, *, device_id):
        return True

    def next_change_s(self, rng, *, device_id, online, now_s):
        if device_id != 1:
            return math.inf
        return self.offline_at_s if online and now_s == 0 else (1.0 if not online else math.inf)


def test_going_offline_interrupts_the_running_job():
    dl, cmp, _ = expected_phases(1)
    offline_at = dl + cmp / 2  # in the middle of device 1's computation
    world = build_world(
        {"devices.availability": {"kind": "markov", "mean_online_s": 1, "mean_offline_s": 1}}
    )
    world.availability = ScriptedAvailability(offline_at)
    recorder, _ = simulate_world(world)
    ev = recorder.events_table().to_pylist()
    offline = [e for e in ev if e["event"] == "offline"]
    failure = [e for e in ev if e["event"] == "failure"]
    assert [(e["device_id"], e["time_s"]) for e in offline] == [(1, pytest.approx(offline_at))]
    assert [(e["device_id"], e["detail"]) for e in failure] == [(1, "offline")]
    assert failure[0]["time_s"] == pytest.approx(offline_at)
    row0 = recorder.metrics[0]
    others = max(sum(expected_phases(k)) for k in (0, 2))
    assert row0["round_latency_s"] == pytest.approx(max(others, offline_at), rel=1e-9)
    assert (row0["n_delivered"], row0["n_failed"]) == (2, 1)
    # Interrupted mid-compute: energy counts half the compute and no transmission for device 1.
    kappa, f = 1e-28, CPU_HZ[1]
    spent = kappa * (f * cmp / 2) * f**2
    full = sum(1e-28 * (CPU_HZ[k] * expected_phases(k)[1]) * CPU_HZ[k] ** 2 for k in (0, 2))
    assert row0["energy_compute_j"] == pytest.approx(full + spent, rel=1e-9)
    # Round 1 starts (at ~0.04 s) while device 1 is still offline (until offline_at + 1 s).
    assert row0["round_latency_s"] < offline_at + 1.0
    selected_r1 = {e["device_id"] for e in ev if e["event"] == "downlink_start" and e["round"] == 1}
    assert selected_r1 == {0, 2}


def test_minmax_allocation_makes_every_device_finish_together():
    world = build_world({"channel.allocator": {"kind": "minmax_latency", "solver": "bisection"}})
    recorder, _ = simulate_world(world)
    done = [events_of(recorder, k, 0)["upload_done"] for k in range(3)]
    assert max(done) - min(done) < 1e-9 * max(done)
    row = recorder.metrics[0]
    assert row["round_latency_s"] == pytest.approx(row["predicted_latency_s"], rel=1e-9)
    # every device finishes together: the critical path is the highest id's (device 2)
    dl2, cmp2 = expected_phases(2)[:2]
    assert (row["downlink_s"], row["compute_s"]) == pytest.approx((dl2, cmp2), rel=1e-9)
    # and it beats equal share on the same devices
    eq_round = max(sum(expected_phases(k)) for k in range(3))
    assert row["round_latency_s"] < eq_round


@pytest.mark.parametrize("phase", ["downlink", "compute", "uplink"])
def test_work_done_before_an_interruption_counts_in_every_phase(phase):
    """Device 1 goes offline halfway through one phase: the time, bits and energy it spent up
    to then are counted, nothing after."""
    dl, cmp, ul = expected_phases(1)
    starts = {"downlink": 0.0, "compute": dl, "uplink": dl + cmp}
    length = {"downlink": dl, "compute": cmp, "uplink": ul}
    t_int = starts[phase] + length[phase] / 2
    world = build_world(
        {
            "simulation.rounds": 1,
            "devices.availability": {"kind": "markov", "mean_online_s": 1, "mean_offline_s": 1},
        }
    )
    world.availability = ScriptedAvailability(t_int)
    recorder, ctx = simulate_world(world)
    row = recorder.metrics[0]
    p_tx_w = 10 ** ((TX_DBM - 30) / 10)
    kappa = 1e-28
    others_tx = sum(p_tx_w * expected_phases(k)[2] for k in (0, 2))
    others_compute = sum(kappa * CPU_HZ[k] ** 3 * expected_phases(k)[1] for k in (0, 2))
    uplink_part = t_int - starts["uplink"] if phase == "uplink" else 0.0
    compute_part = {"downlink": 0.0, "compute": cmp / 2, "uplink": cmp}[phase]
    assert row["energy_tx_j"] == pytest.approx(others_tx + p_tx_w * uplink_part, rel=1e-9)
    assert row["energy_compute_j"] == pytest.approx(
        others_compute + kappa * CPU_HZ[1] ** 3 * compute_part, rel=1e-9
    )
    stats = ctx.device_stats
    assert stats.busy_s[1] == pytest.approx(t_int, rel=1e-9)
    assert stats.bits_down[1] == (0 if phase == "downlink" else BITS)
    assert stats.bits_up[1] == 0
    assert row["bits_down"] == BITS * (2 if phase == "downlink" else 3)
    assert row["bits_up"] == 2 * BITS
    failure = [e for e in recorder.events_table().to_pylist() if e["event"] == "failure"]
    assert [(f["device_id"], f["leg"], f["time_s"]) for f in failure] == [
        (1, {"downlink": "model_down", "compute": "train", "uplink": "model_up"}[phase],
         pytest.approx(t_int, rel=1e-12))
    ]  # fmt: skip
