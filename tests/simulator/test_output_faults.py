"""Faults around the results folder: each leaves a complete result or none, and a previous
result is never lost (issue 11, classes 6 and 7)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from simulator.outputs import check_out_root, recover
from tests.conftest import TINY, run_wedge

RESULT_FILES = {
    "scenario.resolved.yaml",
    "metrics.parquet",
    "events.parquet",
    "devices.parquet",
    "summary.json",
}


def _scenario(tmp_path: Path, **overrides) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, **overrides}))
    return path


def _results(root: Path) -> dict[str, set[str]]:
    """Visible result folders and their files."""
    if not root.exists():
        return {}
    return {d.name: {f.name for f in d.iterdir()} for d in root.iterdir() if d.is_dir()
            and not d.name.startswith(".")}  # fmt: skip


def _hidden(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.name.startswith(".")}


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])  # noqa: S607 (a coreutils program, any PATH)
    child.wait()
    return child.pid


@pytest.mark.parametrize("where", ["file", "below_file"])
def test_an_out_that_is_a_file_is_one_line_before_anything_runs(tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if where == "file" else blocker / "runs"
    done = run_wedge("run", str(_scenario(tmp_path)), "--out", str(out))
    assert done.returncode == 2
    assert done.stdout == ""  # nothing ran: not even the header
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--out" in lines[0] and "a file" in lines[0]


def _read_only_dir(tmp_path: Path):
    """An unwritable folder: chmod for a normal user, a read-only tmpfs for root."""
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0o555)
        return target, lambda: target.chmod(0o755)
    mounted = subprocess.run(  # noqa: S603
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(target)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("running as root without permission to mount a tmpfs")
    return target, lambda: subprocess.run(["umount", str(target)], check=False)  # noqa: S603,S607


def test_an_unwritable_out_is_one_line_before_anything_runs(tmp_path):
    target, undo = _read_only_dir(tmp_path)
    try:
        done = run_wedge("run", str(_scenario(tmp_path)), "--out", str(target / "runs"))
    finally:
        undo()
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--out" in lines[0]


def test_a_full_disk_fails_in_one_line_and_leaves_no_hidden_staging(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(  # noqa: S603
        ["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(disk)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("no permission to mount a tmpfs")
    try:
        scenario = _scenario(tmp_path, simulation={"rounds": 20})
        done = run_wedge("run", str(scenario), "--out", str(disk))
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "No space left on device" in lines[0], done.stderr
        assert _results(disk) == {} and _hidden(disk) == set()
    finally:
        subprocess.run(["umount", str(disk)], check=False)  # noqa: S603,S607


def test_two_concurrent_runs_into_one_out_both_publish_one_complete_result(tmp_path):
    scenario, out = _scenario(tmp_path), tmp_path / "runs"
    command = [sys.executable, "-m", "simulator.cli", "run", str(scenario), "--out", str(out)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603
             for _ in range(3)]  # fmt: skip
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0, 0], [p.stderr.read() for p in procs if p.stderr]
    results = _results(out)
    assert len(results) == 1 and next(iter(results.values())) == RESULT_FILES
    assert _hidden(out) == set()


def test_a_crash_between_the_two_renames_of_a_republish_loses_nothing(tmp_path):
    """The old result was moved aside and the process died before the new one went in: the
    next run (its out check) puts the old one back, and removes the dead staging."""
    scenario, out = _scenario(tmp_path), tmp_path / "runs"
    assert run_wedge("run", str(scenario), "--out", str(out)).returncode == 0
    (name, files), = _results(out).items()  # fmt: skip
    dead = _dead_pid()
    os.replace(out / name, out / f".{name}.old-{dead}-abcd1234")
    (out / f".{name}.staging-{dead}-xyz").mkdir()
    assert _results(out) == {}
    check_out_root(out)
    assert _results(out) == {name: files} and _hidden(out) == set()
    # an aside copy whose result is back in place is only removed
    (out / f".{name}.old-{dead}-ffff0000").mkdir()
    recover(out)
    assert _results(out) == {name: files} and _hidden(out) == set()


def test_a_live_runs_staging_is_left_alone(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    mine = out / f".x-1.staging-{os.getpid()}-abc"
    mine.mkdir()
    check_out_root(out)
    assert mine.exists()


@pytest.mark.slow
def test_kill_9_at_random_moments_never_loses_the_previous_result(tmp_path):
    scenario = _scenario(tmp_path, simulation={"rounds": 40})
    out = tmp_path / "runs"
    assert run_wedge("run", str(scenario), "--out", str(out)).returncode == 0
    before = _results(out)
    assert len(before) == 1 and next(iter(before.values())) == RESULT_FILES
    command = [sys.executable, "-m", "simulator.cli", "run", str(scenario), "--out", str(out)]
    rng = random.Random(11)
    for _ in range(6):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        time.sleep(rng.uniform(0.5, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recover(out)  # what the next run does first
        assert _results(out) == before
        assert _hidden(out) == set()
