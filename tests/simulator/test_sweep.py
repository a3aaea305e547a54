"""Sweeps on a real Dask LocalCluster: tidy tables, resume after SIGKILL, clear errors."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from simulator.cli import main
from simulator.engine.runner import run
from simulator.studies.report import report
from simulator.studies.results import load_run, load_sweep
from simulator.studies.sweep import load_sweep_file, run_sweep
from tests.conftest import TINY, make_scenario

WEDGE = str(Path(sys.executable).with_name("wedge"))


def write_sweep(tmp_path, **spec):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(TINY))
    spec = {"name": "s", "base": "base.yaml", **spec}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


GRID_2x2x2 = {
    "seeds": [1, 2],
    "overrides": {"simulation.rounds": 2},
    "grid": {"channel.uplink_bandwidth_hz": [1.0e6, 2.0e6], "devices.count": [3, 4]},
}


def test_2x2x2_sweep_on_a_local_cluster_gives_a_tidy_table(tmp_path):
    sweep = load_sweep_file(write_sweep(tmp_path, **GRID_2x2x2))
    assert len(sweep.points) == 8
    folder = run_sweep(sweep, tmp_path / "runs", workers=2)
    data = load_sweep(folder)
    t, s = data.table, data.summary
    assert len(s) == 8 and (s.status == "completed").all()
    assert t.point.nunique() == 8 and len(t) == 16  # 8 points x 2 versions
    assert not t.duplicated(["point", "version"]).any()
    for col in (
        "channel.uplink_bandwidth_hz",
        "devices.count",
        "seed",
        "version",
        "time_s",
        "round_latency_s",
        "compute_s",
        "uplink_s",
        "downlink_s",
        "wait_s",
        "accuracy",
        "bits_up",
        "energy_compute_j",
    ):
        assert col in t.columns, col
    assert set(zip(s["channel.uplink_bandwidth_hz"], s["devices.count"], s.seed, strict=True)) == {
        (b, n, seed) for b in (1e6, 2e6) for n in (3, 4) for seed in (1, 2)
    }
    # each point's resolved scenario sits next to its results
    for point in s.point:
        resolved = yaml.safe_load(
            (folder / "points" / point / "scenario.resolved.yaml").read_text()
        )
        assert resolved["simulation"]["rounds"] == 2
    assert {"final_accuracy", "time_to_target_s", "mean_round_latency_s"} <= set(s.columns)


def test_different_sweeps_never_share_a_folder(tmp_path):
    a = load_sweep_file(write_sweep(tmp_path, **GRID_2x2x2))
    b = load_sweep_file(write_sweep(tmp_path, **{**GRID_2x2x2, "seeds": [3]}))
    assert a.folder(tmp_path) != b.folder(tmp_path)


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    # a divergent learning rate is reported by the run itself; to make a point *raise*, ask for
    # more devices than the data can be split across (checked when the point builds)
    sweep = load_sweep_file(
        write_sweep(
            tmp_path,
            seeds=[1],
            overrides={"simulation.rounds": 1, "data.partition": {"kind": "dirichlet"}},
            grid={"devices.count": [3, 1000]},
        )
    )
    folder = run_sweep(sweep, tmp_path / "runs", workers=1)
    s = load_sweep(folder).summary.set_index("devices.count")
    assert s.loc[3, "status"] == "completed"
    assert s.loc[1000, "status"] == "failed" and "cannot give 1000 devices" in s.loc[1000, "error"]
    assert len(list((folder / "failed").glob("*.json"))) == 1


@pytest.mark.parametrize(
    "spec, fragments",
    [
        (
            {"grid": {"channel.uplink_bandwith_hz": [1e6]}},
            ["channel.uplink_bandwith_hz", "unknown key 'uplink_bandwith_hz'"],
        ),
        ({"grid": {}}, ["grid is empty"]),
        ({"grid": {"devices.count": []}}, ["grid entries with no values: devices.count"]),
        (
            {"grid": {"channel.uplink_bandwidth_hz": [1e6, -5]}},
            [
                "channel.uplink_bandwidth_hz=-5",
                "expected a number greater than or equal to 1, found -5",
            ],
        ),
        ({"points": [{"strategy.kind": "nope"}]}, ["strategy.kind", "'nope'"]),
    ],
)
def test_bad_sweep_files_fail_before_anything_runs(tmp_path, capsys, spec, fragments):
    path = write_sweep(tmp_path, **spec)
    assert main(["sweep", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "runs").exists()


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_report_writes_every_figure_at_the_documented_size(tmp_path):
    result = run(
        make_scenario({"simulation.deadline_s": 0.012, "simulation.rounds": 3}), out_root=tmp_path
    )
    files = report(result.out_dir)
    assert [f.name for f in files] == [
        "accuracy_vs_time.png",
        "latency_breakdown.png",
        "device_timeline.png",
        "bandwidth_shares.png",
        "device_activity.png",
    ]
    for f in files:
        assert _png_size(f) == (800, 450) and f.stat().st_size > 5_000
    async_run = run(
        make_scenario({"strategy": {"kind": "fedasync"}, "simulation.rounds": 6}),
        out_root=tmp_path,
    )
    assert load_run(async_run.out_dir).summary["staleness_histogram"]
    activity = report(async_run.out_dir)[-1]
    assert activity.name == "device_activity.png" and _png_size(activity) == (800, 450)
    sweep = load_sweep_file(write_sweep(tmp_path, **GRID_2x2x2))
    folder = run_sweep(sweep, tmp_path / "runs", workers=1)
    figures = report(folder)
    assert {f.name for f in figures} == {
        "latency_vs_channel.uplink_bandwidth_hz.png",
        "latency_vs_devices.count.png",
    }
    assert all(_png_size(f) == (800, 450) for f in figures)
    assert main(["report", str(tmp_path / "nothing")]) == 2


@pytest.mark.slow
def test_a_sweep_killed_midway_resumes_without_recomputing(tmp_path):
    # 6 points of ~0.3 s each on one worker; kill -9 the whole process group once 2 are done
    sweep_file = write_sweep(
        tmp_path,
        seeds=[1, 2, 3],
        overrides={"simulation.rounds": 12, "devices.count": 8},
        grid={"channel.uplink_bandwidth_hz": [1.0e6, 2.0e6]},
    )
    folder = load_sweep_file(sweep_file).folder(tmp_path / "runs")
    cmd = [WEDGE, "sweep", str(sweep_file), "--out", str(tmp_path / "runs"), "--workers", "1"]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list((folder / "points").glob("*/summary.json")) if folder.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {
        p.parent.name: (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in (folder / "points").glob("*/summary.json")
    }
    assert 2 <= len(finished) < 6
    assert not (folder / "table.parquet").exists()  # the kill came before the gathering
    # every point folder present is complete (no half-written result under a final name)
    for point in (folder / "points").iterdir():
        if not point.name.startswith("."):
            assert {"summary.json", "metrics.parquet", "events.parquet"} <= {
                f.name for f in point.iterdir()
            }
    subprocess.run(cmd, check=True, capture_output=True)
    after = {
        p.parent.name: (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in (folder / "points").glob("*/summary.json")
    }
    assert len(after) == 6
    assert {k: after[k] for k in finished} == finished  # not recomputed
    assert not [p for p in (folder / "points").iterdir() if p.name.startswith(".")]
    # identical to an uninterrupted run with the same seeds
    clean = tmp_path / "clean"
    subprocess.run(
        [WEDGE, "sweep", str(sweep_file), "--out", str(clean), "--workers", "2"],
        check=True,
        capture_output=True,
    )
    a = load_sweep(folder).table.sort_values(["point", "version"]).reset_index(drop=True)
    b = load_sweep(load_sweep_file(sweep_file).folder(clean)).table
    b = b.sort_values(["point", "version"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
