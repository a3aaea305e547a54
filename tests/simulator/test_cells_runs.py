"""Cells, HierFAVG and AirComp inside runs: a handover at its computed time, each cell on its
own band, backhaul legs, HierFAVG = FedAvg with one cell, AirComp's flat leg time, and the
settings that are refused."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.runner import run
from simulator.engine.world import build
from simulator.errors import ScenarioError
from tests.conftest import make_scenario

TWO_CELLS = {"count": 2, "layout": "explicit", "positions_m": [[0, 0], [1000, 0]]}


def _table(tmp_path, rows: list[tuple[float, float]]) -> str:
    path = tmp_path / "devices.csv"
    path.write_text("x_m,y_m\n" + "".join(f"{x},{y}\n" for x, y in rows))
    return str(path)


def test_a_constant_velocity_device_hands_over_at_the_computed_time(tmp_path):
    # one device from x = 105 m at 10 m/s along +x: it passes the border (x = 500 m, equal
    # path loss to both sites) at 39.5 s; positions update every 1 s block, so the handover
    # event comes at 40 s, from cell 0 to cell 1. Rounds take 16 s (16 samples x 1e8 cycles
    # at 1e8 Hz), so it is in the middle of round 2's compute (32 s to 48 s) and fails it.
    scenario = make_scenario({
        "devices": {"count": 1, "cpu_hz": 1e8, "cycles_per_sample": 1e8, "tx_power_dbm": 20,
                    "placement": {"kind": "disc", "radius_m": 5000},
                    "source": {"kind": "table", "path": _table(tmp_path, [(105.0, 0.0)])},
                    "mobility": {"kind": "constant_velocity", "speed_mps": [10, 10],
                                 "heading_deg": 0}},
        "channel.fading": {"kind": "rayleigh", "coherence_s": 1.0},
        "cells": TWO_CELLS, "training.mode": "none", "simulation.rounds": 4,
    })  # fmt: skip
    result = run(scenario, out_root=None)
    e = result.events.to_pandas()
    hand = e[e.event == "handover"]
    assert hand.time_s.tolist() == [40.0]
    assert hand.detail.astype(str).tolist() == ["0 -> 1"]
    failed = e[e.event == "failure"]
    assert failed.detail.astype(str).tolist() == ["handover"]
    assert failed.time_s.tolist() == [40.0] and failed["round"].tolist() == [2]
    m = result.metrics.to_pandas()
    assert m.handovers.tolist() == [0, 0, 1, 0]
    assert m.cell0_load.tolist() == [1, 1, 1, 0] and m.cell1_load.tolist() == [0, 0, 0, 1]
    # finish_old: the same device finishes round 2 with its old cell
    kept = run(scenario.model_copy(update={"cells": scenario.cells.model_copy(
        update={"handover": "finish_old"})}), out_root=None)  # fmt: skip
    ke = kept.events.to_pandas()
    assert (ke.event == "failure").sum() == 0 and (ke.event == "handover").sum() == 1


def _static(tmp_path, **over):
    # four devices: two next to each site
    rows = [(100.0, 0.0), (-100.0, 0.0), (900.0, 0.0), (1100.0, 0.0)]
    return make_scenario({
        "devices.count": 4, "devices.source": {"kind": "table", "path": _table(tmp_path, rows)},
        "devices.placement": {"kind": "disc", "radius_m": 2000}, "cells": TWO_CELLS, **over,
    })  # fmt: skip


def test_each_cell_shares_its_own_band(tmp_path):
    for reuse, band in ((1, 1e6 / 2), (3, 1e6 / 3 / 2)):  # 2 devices per cell, equal share
        over = {"cells": {**TWO_CELLS, "reuse": reuse}, "training.mode": "none"}
        e = run(_static(tmp_path, **over), out_root=None).events.to_pandas()
        up = e[e.event == "uplink_start"]
        np.testing.assert_allclose(up.bandwidth_hz.to_numpy(), band)
        m = run(_static(tmp_path, **over), out_root=None).metrics.to_pandas()
        assert (m.cell0_load == 2).all() and (m.cell1_load == 2).all()
    # interference lowers the SINR: reuse 1 against reuse 3's clean third of the band
    one = run(_static(tmp_path, **{"training.mode": "none"}), out_root=None).metrics
    reuse3 = {"training.mode": "none", "cells": {**TWO_CELLS, "reuse": 3}}
    three = run(_static(tmp_path, **reuse3), out_root=None).metrics
    # (without it, reuse 1's SINR would be reuse 3's plus 10 log10(3): three times the band)
    one_db, three_db = one.to_pandas().sinr_db_p50, three.to_pandas().sinr_db_p50
    assert (one_db + 10 * np.log10(3) < three_db - 3.0).all()


def test_backhaul_legs_of_flat_fedavg_and_of_hierfavg(tmp_path):
    cells = {**TWO_CELLS, "backhaul_bps": 1e5, "backhaul_latency_s": 0.01}
    bits = 32 * (64 * 8 + 8 + 8 * 10 + 10)  # the tiny MLP 64-8-10: 19,520 bits
    flat = run(_static(tmp_path, cells=cells), out_root=None).metrics.to_pandas()
    # down: one model per cell; up: both members' models: (0.01 + b/1e5) + (0.01 + 2b/1e5)
    want = 0.01 + bits / 1e5 + 0.01 + 2 * bits / 1e5
    np.testing.assert_allclose(flat.backhaul_s, want)
    assert (flat.bits_backhaul == 2 * 3 * bits).all()
    hier = run(_static(tmp_path, cells=cells, strategy={"kind": "hierfavg", "edge_rounds": 2},
                       **{"simulation.rounds": 4}), out_root=None).metrics.to_pandas()  # fmt: skip
    assert hier.cloud_round.tolist() == [0.0, 1.0, 0.0, 1.0]
    # cloud rounds: one model up and one down each backhaul; edge rounds: none
    np.testing.assert_allclose(hier.backhaul_s, [0, 2 * (0.01 + bits / 1e5)] * 2)
    assert hier.bits_backhaul.tolist() == [0, 4 * bits, 0, 4 * bits]
    # the cloud model only changes at cloud rounds
    acc = hier.accuracy.to_numpy()
    assert acc[1] != acc[0] and acc[2] == acc[1]


def test_hierfavg_with_one_cell_and_cloud_every_round_is_fedavg(tmp_path):
    one = {"count": 1}
    fed = run(make_scenario({"cells": one}), out_root=None).metrics.to_pandas()
    hier = run(make_scenario({"cells": one, "strategy": {"kind": "hierfavg", "edge_rounds": 1}}),
               out_root=None).metrics.to_pandas()  # fmt: skip
    for column in ("accuracy", "loss", "train_loss"):
        assert hier[column].equals(fed[column])


def test_aircomp_leg_time_does_not_grow_with_devices():
    times = {}
    for n in (10, 100):
        air = {"kind": "over_the_air", "snr_threshold_db": -50}
        over = {"devices.count": n, "training.mode": "none", "channel.aggregation": air}
        m = run(make_scenario(over), out_root=None).metrics.to_pandas()
        times[n] = m.uplink_s.to_numpy()
        assert (m.aircomp_excluded == 0).all()
        # the formula sigma^2 / (|S|^2 rho0) for the devices that delivered
        assert m.aircomp_mse_formula.notna().all() and m.aircomp_mse.isna().all()
    entries = 64 * 8 + 8 + 8 * 10 + 10  # 610 entries, 2 per complex symbol on 1 MHz
    np.testing.assert_allclose(times[10], entries / 2e6)
    np.testing.assert_allclose(times[100], entries / 2e6)


def test_aircomp_measures_the_aggregate_error_in_training_runs():
    over = {"devices.count": 10, "channel.aggregation": {"kind": "over_the_air"},
            "channel.fading": {"kind": "rayleigh", "coherence_s": 0.01}}  # fmt: skip
    m = run(make_scenario(over), out_root=None).metrics.to_pandas()
    assert m.aircomp_mse.notna().all()
    ratio = m.aircomp_mse / m.aircomp_mse_formula
    assert ((ratio > 0.7) & (ratio < 1.3)).all()  # 610 entries: a few % of spread per round


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"strategy": {"kind": "hierfavg"}}, r"cells: expected a cells section"),
        ({"cells": {"count": 2}, "strategy": {"kind": "fedasync"}},
         r"cells: expected no cells section with the asynchronous strategy"),
        ({"channel.aggregation": {"kind": "over_the_air"}, "strategy": {"kind": "scaffold"}},
         r"channel\.aggregation\.kind: expected digital with strategy 'scaffold'"),
        ({"channel.aggregation": {"kind": "over_the_air"}, "cells": {"count": 2}},
         r"channel\.aggregation\.kind: expected digital with a cells section"),
    ],
)  # fmt: skip
def test_refused_settings(over, match):
    with pytest.raises(ScenarioError, match=match):
        build(make_scenario(over), "s.yaml")
