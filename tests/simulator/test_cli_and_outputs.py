"""`wedge run` writes the documented folder atomically; `wedge validate` passes our scenarios."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from simulator.cli import main
from simulator.engine.runner import run, run_dir_name
from simulator.loader import load_scenario, validate_scenario
from simulator.outputs import publish_dir, write_text
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]


def test_validate_all_shipped_scenarios(capsys):
    files = sorted(str(p) for p in (ROOT / "scenarios").glob("*.yaml"))
    assert len(files) >= 3
    assert main(["validate", *files]) == 0
    assert capsys.readouterr().out.count(": ok (") == len(files)


def test_run_writes_the_documented_folder(tmp_path, capsys):
    scenario_file = tmp_path / "tiny.yaml"
    scenario_file.write_text(yaml.safe_dump(TINY))
    code = main(
        [
            "run",
            str(scenario_file),
            "--out",
            str(tmp_path / "runs"),
            "--csv",
            "--set",
            "simulation.rounds=2",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "round s" in out and "acc" in out  # the per-round table
    run_dir = (
        tmp_path / "runs" / run_dir_name(load_scenario(scenario_file, ["simulation.rounds=2"]))
    )
    assert f"results: {run_dir}" in out
    names = {p.name for p in run_dir.iterdir()}
    assert names == {
        "scenario.resolved.yaml",
        "metrics.parquet",
        "events.parquet",
        "devices.parquet",
        "summary.json",
        "metrics.csv",
        "events.csv",
        "devices.csv",
    }
    metrics = pq.read_table(run_dir / "metrics.parquet").to_pylist()
    assert [m["version"] for m in metrics] == [1, 2]
    for col in (
        "time_s",
        "round_latency_s",
        "compute_s",
        "uplink_s",
        "downlink_s",
        "wait_s",
        "accuracy",
        "loss",
        "bits_up",
        "bits_down",
        "energy_compute_j",
        "energy_tx_j",
    ):
        assert col in metrics[0]
    # the file holds exactly what the engine computed for this scenario in process
    resolved_file = run_dir / "scenario.resolved.yaml"
    in_process = run(
        validate_scenario(yaml.safe_load(resolved_file.read_text()), "t"), out_root=None
    ).metrics.to_pylist()
    assert [m["accuracy"] for m in metrics] == [m["accuracy"] for m in in_process]
    assert [m["time_s"] for m in metrics] == [m["time_s"] for m in in_process]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["versions"] == 2
    resolved = yaml.safe_load((run_dir / "scenario.resolved.yaml").read_text())
    assert resolved["simulation"]["rounds"] == 2  # overrides are in the resolved file
    assert resolved["channel"]["noise_psd_dbm_per_hz"] == -174.0  # defaults written out
    events = pq.read_table(run_dir / "events.parquet")
    assert events.num_rows == summary["events"]
    assert not list((tmp_path / "runs").glob(".*"))  # no staging or temp leftovers


def test_rerun_replaces_the_folder_and_stale_staging_is_discarded(tmp_path):
    from tests.conftest import make_scenario

    scenario = make_scenario({"simulation.rounds": 1})
    first = run(scenario, out_root=tmp_path)
    dead = subprocess.Popen(["true"])  # noqa: S607 (a pid that is no longer running)
    dead.wait()
    staging = tmp_path / f".{first.out_dir.name}.staging-{dead.pid}-abc"
    staging.mkdir()
    (staging / "summary.json").write_text("{half")  # what a killed run could leave
    second = run(scenario, out_root=tmp_path)
    assert second.out_dir == first.out_dir
    assert json.loads((second.out_dir / "summary.json").read_text())["versions"] == 1
    assert not staging.exists()


def test_atomic_write_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "x.txt"
    write_text(target, "complete")
    assert target.read_text() == "complete" and len(list(tmp_path.iterdir())) == 1
    staging, final = tmp_path / "stage", tmp_path / "final"
    staging.mkdir()
    (staging / "a").write_text("new")
    final.mkdir()
    (final / "a").write_text("old")
    publish_dir(staging, final)
    assert (final / "a").read_text() == "new" and not staging.exists()


def test_diverging_model_is_reported_not_raised(tmp_path, capsys):
    scenario_file = tmp_path / "hot.yaml"
    scenario_file.write_text(yaml.safe_dump(TINY))
    code = main(
        [
            "run",
            str(scenario_file),
            "--out",
            str(tmp_path),
            "--set",
            "training.lr=1e30",
            "--set",
            "simulation.rounds=5",
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "status diverged" in out and "model diverged in round" in out
    summary = json.loads(next(tmp_path.glob("tiny-*/summary.json")).read_text())
    assert summary["status"] == "diverged" and summary["versions"] < 5
    metrics = pq.read_table(next(tmp_path.glob("tiny-*/metrics.parquet"))).to_pylist()
    assert not math.isfinite(metrics[-1]["loss"])


def test_time_limited_run_prints_rows_along_virtual_time(tmp_path, capsys):
    scenario_file = tmp_path / "tiny.yaml"
    scenario_file.write_text(yaml.safe_dump(TINY))
    over = ["strategy={kind: fedasync}", "simulation.rounds=100000", "simulation.max_time_s=1.0"]
    args = ["run", str(scenario_file), "--out", str(tmp_path / "runs")]
    assert main([*args, *[x for o in over for x in ("--set", o)]]) == 0
    out = capsys.readouterr().out
    assert "up to 100000 versions or 1 s virtual" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    # the rows the scenario implies: the first evaluated version at or after each 1/50 of the
    # limit (the next due time counted from the printed row), from the same run in process
    scenario = load_scenario(scenario_file, over)
    expected, next_row_s = [], 0.0
    for m in run(scenario, out_root=None).metrics.to_pylist():
        if m["time_s"] >= next_row_s and not math.isnan(m["accuracy"]):
            expected.append(m["version"])
            next_row_s = m["time_s"] + 1.0 / 50
    assert [int(r[0]) for r in rows] == expected
    assert len(expected) > 10 and all(r[-2] != "-" for r in rows)


def test_the_wedge_command_ends_without_teardown_and_loses_nothing(tmp_path):
    """``wedge run`` as a process skips the interpreter's teardown (os._exit after flushing
    and the atexit handlers): every line printed and every result file is still there, and
    the exit codes are those of :func:`main`, for a good run and for bad input alike."""
    import os
    import sys

    wedge = str(Path(sys.executable).with_name("wedge"))
    # block-buffered output, as in most shells' pipes (so an unflushed line would be lost)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    scenario_file = tmp_path / "tiny.yaml"
    scenario_file.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "runs"
    argv = [wedge, "run", str(scenario_file), "--out", str(out), "--set", "simulation.rounds=2"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("wedge: ") and lines[-1].startswith("results: ")
    folder = Path(lines[-1].removeprefix("results: "))
    assert json.loads((folder / "summary.json").read_text())["versions"] == 2
    assert pq.read_table(folder / "metrics.parquet").num_rows == 2
    bad = subprocess.run([*argv[:2], str(tmp_path / "missing.yaml")], capture_output=True,
                         text=True, check=False, env=env)  # fmt: skip
    assert bad.returncode == 2 and "missing.yaml" in bad.stderr and "Traceback" not in bad.stderr
