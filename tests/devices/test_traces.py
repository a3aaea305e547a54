"""Availability traces: intervals read and checked row by row, reproduced in the event log."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from devices.traces import TraceAvailability, TraceError, read_availability_trace
from simulator.engine.runner import simulate_world
from simulator.engine.world import build
from tests.conftest import TINY, make_scenario, run_wedge

TRACE = """device_id,online_from_s,online_until_s
0,0,0.05
0,0.2,1.0
1,0.1,0.3
1,0.3,inf
2,0,1000
"""


def test_intervals_merge_where_they_touch_and_devices_without_rows_stay_offline(tmp_path):
    path = tmp_path / "online.csv"
    path.write_text(TRACE)
    spans = read_availability_trace(path, 4)
    assert spans[0].tolist() == [[0.0, 0.05], [0.2, 1.0]]
    assert spans[1].tolist() == [[0.1, math.inf]]  # 0.1-0.3 and 0.3-inf touch
    trace = TraceAvailability(spans)
    rng = np.random.default_rng(0)
    assert [trace.initially_online(rng, device_id=d) for d in range(4)] == [
        True, False, True, False,
    ]  # fmt: skip
    assert trace.next_change_s(rng, device_id=0, online=True, now_s=0.0) == 0.05
    assert trace.next_change_s(rng, device_id=0, online=False, now_s=0.05) == pytest.approx(0.15)
    assert trace.next_change_s(rng, device_id=3, online=False, now_s=0.0) == math.inf


def test_the_trace_is_reproduced_in_the_event_log(tmp_path):
    path = tmp_path / "online.csv"
    path.write_text(TRACE)
    scenario = make_scenario(
        {
            "devices.availability": {"kind": "trace", "path": str(path)},
            "training.mode": "none",
            "simulation.rounds": 1000,
            "simulation.max_time_s": 1.5,
        }
    )
    recorder, _ = simulate_world(build(scenario))
    ev = recorder.events_table().to_pandas()
    flips = ev[ev.event.isin(["online", "offline"])]
    got = [(r.device_id, r.event, r.time_s) for r in flips.itertuples()]
    expected = [(0, "offline", 0.05), (1, "online", 0.1), (0, "online", 0.2), (0, "offline", 1.0)]
    assert [(d, e) for d, e, _ in got] == [(d, e) for d, e, _ in expected]
    assert [t for *_, t in got] == pytest.approx([t for *_, t in expected], abs=1e-12)
    # device 3 is never online: never selected; device 1 joins only after 0.1 s
    starts = ev[ev.event == "downlink_start"]
    assert 3 not in set(starts.device_id)
    assert starts[starts.device_id == 1].time_s.min() >= 0.1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,-0.5,2", "row 2: expected 0 <= online_from_s < online_until_s, found -0.5 to 2"),
        ("0,0.04,0.1", "row 2: expected no overlap with row 1 of device 0, found 0.04 to 0.1 "
         "inside 0 to 0.05"),
        ("7,0,1", "row 2: expected a device_id in 0..3, found 7"),
        ("x,0,1", "row 2: expected an integer device_id and two numbers, found "),
        ("2,1,1", "row 2: expected 0 <= online_from_s < online_until_s, found 1 to 1"),
    ],
    ids=["negative", "overlap", "unknown_device", "not_a_number", "empty"],
)  # fmt: skip
def test_bad_rows_name_the_file_and_the_row(tmp_path, row, message):
    path = tmp_path / "online.csv"
    path.write_text(f"device_id,online_from_s,online_until_s\n0,0,0.05\n{row}\n")
    with pytest.raises(TraceError) as err:
        read_availability_trace(path, 4)
    assert str(err.value).startswith(f"{path} {message}")


def test_a_bad_trace_exits_2_with_one_line_and_writes_nothing(tmp_path):
    trace = tmp_path / "online.csv"
    trace.write_text("device_id,online_from_s,online_until_s\n0,0,1\n9,0,1\n")
    scenario = {
        **TINY,
        "devices": {**TINY["devices"], "availability": {"kind": "trace", "path": str(trace)}},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario))
    out = run_wedge("run", str(path), "--out", str(tmp_path / "o"))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"{path}: devices.availability.path: expected a device_id in 0..3 at {trace} row 2, found 9"
    )
    assert not (tmp_path / "o").exists()


DEVICES_CSV = """device_id,cpu_hz,tx_power_dbm,x_m,y_m
0,1.5e8,20,100,0
1,3e8,17,0,-250
2,6e8,23,-30,40
3,1.2e9,10,300,400
"""


def test_a_device_table_is_reproduced_exactly_in_devices_parquet(tmp_path):
    from simulator.engine.runner import run

    table = tmp_path / "devices.csv"
    table.write_text(DEVICES_CSV)
    scenario = make_scenario(
        {"devices.source": {"kind": "table", "path": str(table)}, "training.mode": "none"}
    )
    result = run(scenario, out_root=tmp_path / "runs")
    got = result.devices.to_pandas()
    assert got.cpu_hz.tolist() == [1.5e8, 3e8, 6e8, 1.2e9]
    assert got.tx_power_dbm.tolist() == [20.0, 17.0, 23.0, 10.0]
    assert got.x_m.tolist() == [100.0, 0.0, -30.0, 300.0]
    assert got.y_m.tolist() == [0.0, -250.0, 40.0, 400.0]
    assert got.distance_m.tolist() == [100.0, 250.0, 50.0, 500.0]
    # columns the table lacks come from the scenario: TINY's cycles_per_sample is 1e5
    assert got.cycles_per_sample.tolist() == [1e5] * 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (DEVICES_CSV.replace("3e8", "-3e8"), "cpu_hz: a number > 0 at {path} row 2, found -3e+08"),
        (DEVICES_CSV.replace("6e8", "fast"), "cpu_hz: a number > 0 at {path} row 3, found 'fast'"),
        (DEVICES_CSV.rsplit("3,", 1)[0], "4 rows (devices.count) at {path}, found 3 rows"),
        (DEVICES_CSV.replace("x_m", "gps_x"), "columns among cpu_hz, cycles_per_sample, "
         "tx_power_dbm, x_m, y_m, kappa at {path}, found ['gps_x']"),
    ],
    ids=["negative", "not_a_number", "row_count", "unknown_column"],
)  # fmt: skip
def test_bad_device_tables_exit_2_naming_the_row(tmp_path, text, message):
    table = tmp_path / "devices.csv"
    table.write_text(text)
    scenario = {
        **TINY,
        "devices": {**TINY["devices"], "source": {"kind": "table", "path": str(table)}},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario))
    out = run_wedge("validate", str(path))
    assert out.returncode == 2
    expected = "expected " + message.format(path=table)
    assert out.stderr.strip() == f"{path}: devices.source.path: {expected}"


def test_flash_devices_keep_the_tables_compute_spread_and_measured_uplinks(tmp_path):
    """scenarios/flash_devices.yaml end to end: every CPU speed is reference x score / median
    score of a phone in the table; each device's uplink at an equal share of the band and mean
    fading carries a measured throughput (recomputed from devices.parquet)."""
    from pathlib import Path

    from devices.flash import flash_scores, flash_upload_bps
    from simulator.engine.runner import run
    from simulator.loader import load_scenario

    path = Path(__file__).resolve().parents[2] / "scenarios" / "flash_devices.yaml"
    result = run(load_scenario(path, ["simulation.rounds=2"]), out_root=tmp_path)
    table = result.devices.to_pandas()
    scores = np.array(sorted(flash_scores().values()))
    ratios = table.cpu_hz / 1e9 * np.median(scores)
    assert all(np.isclose(scores, r, rtol=1e-12).any() for r in ratios)
    # compute times follow the table's spread: 1/score, up to the draw of 40 phones
    assert ratios.max() / ratios.min() > 10
    measured = set(flash_upload_bps().tolist())
    assert set(table.measured_up_bps) <= measured
    b = 100e6 / 40
    gain = 10 ** (-table.pathloss_db / 10)
    snr = 10 ** ((table.tx_power_dbm - 30) / 10) * gain / (10 ** ((-174 - 30) / 10) * b)
    np.testing.assert_allclose(b * np.log2(1 + snr), table.measured_up_bps, rtol=1e-9)
    assert result.summary["status"] == "completed"
