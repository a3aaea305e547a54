"""Sweep resume in the fast suite: a point runner that records its calls shows that only the
missing and the failed points run again, and that every point has exactly one summary row."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import yaml

from simulator.studies.sweep import gather_tables, load_sweep_file, run_point, run_sweep
from tests.conftest import TINY

CALLS = "WEDGE_TEST_CALLS_DIR"
FAIL = "WEDGE_TEST_FAIL_POINT"


def recording_runner(scenario_json, points_dir, failed_dir, point_name):
    """run_point, leaving a file per call; the point named in $WEDGE_TEST_FAIL_POINT gets a
    scenario that cannot build (D2D links for a strategy that sends no D2D traffic), so it
    really fails."""
    calls = Path(os.environ[CALLS])
    calls.mkdir(exist_ok=True)
    n = len(list(calls.glob(f"{point_name}.*")))
    (calls / f"{point_name}.{n}").touch()
    if os.environ.get(FAIL) == point_name:
        d2d = {"band": {"kind": "dedicated", "bandwidth_hz": 1e6}}
        scenario_json = {**scenario_json, "channel": {**scenario_json["channel"], "d2d": d2d}}
    return run_point(scenario_json, points_dir, failed_dir, point_name)


def calls_in(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*"))


def test_rerun_runs_only_missing_and_failed_points(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY))
    spec = {
        "name": "resume",
        "base": "base.yaml",
        "seeds": [1],
        "overrides": {"simulation.rounds": 2, "training.mode": "none"},
        "grid": {"devices.count": [3, 4, 5, 6]},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    sweep = load_sweep_file(tmp_path / "sweep.yaml")
    names = [p.folder for p in sweep.points]
    out = tmp_path / "runs"
    # 1. first attempt: point 1 fails
    monkeypatch.setenv(CALLS, str(tmp_path / "calls1"))
    monkeypatch.setenv(FAIL, names[1])
    folder = run_sweep(sweep, out, workers=2, point_runner=recording_runner)
    assert calls_in(tmp_path / "calls1") == sorted(names)
    summary = pd.read_parquet(folder / "summary.parquet")
    assert summary.point.tolist() == names
    assert summary.status.tolist() == ["completed", "failed", "completed", "completed"]
    # 2. a completed point is lost (e.g. deleted by hand); the failure is fixed
    finished = folder / "points" / names[3] / "summary.json"
    kept = folder / "points" / names[0] / "summary.json"
    kept_stat = kept.stat()
    shutil.rmtree(folder / "points" / names[3])
    _, pending = gather_tables(sweep, folder)
    assert pending.status.tolist() == ["completed", "failed", "completed", "pending"]
    monkeypatch.setenv(CALLS, str(tmp_path / "calls2"))
    monkeypatch.delenv(FAIL)
    run_sweep(sweep, out, workers=2, point_runner=recording_runner)
    # 3. only the failed and the missing point ran; the others were not touched
    assert calls_in(tmp_path / "calls2") == sorted([names[1], names[3]])
    assert (kept.stat().st_mtime_ns, kept.stat().st_ino) == (
        kept_stat.st_mtime_ns,
        kept_stat.st_ino,
    )
    assert finished.exists() and not (folder / "failed" / f"{names[1]}.json").exists()
    summary = pd.read_parquet(folder / "summary.parquet")
    assert summary.point.tolist() == names  # exactly one row per point
    assert (summary.status == "completed").all()
    table = pd.read_parquet(folder / "table.parquet")
    assert table.groupby("point").size().to_dict() == dict.fromkeys(names, 2)
