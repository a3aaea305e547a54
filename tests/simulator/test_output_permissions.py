"""Result files follow the user's umask (0600 would hide a shared results folder from its group)."""

from __future__ import annotations

import os
import stat

import pytest

from simulator.engine.runner import run
from tests.conftest import make_scenario


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_result_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        result = run(make_scenario({"training.mode": "none"}), out_root=tmp_path, csv=True)
    finally:
        os.umask(old)
    files = sorted(result.out_dir.iterdir())
    assert {f.name for f in files} >= {"metrics.parquet", "summary.json", "events.csv"}
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {mode}
    # the folder too: 0666 | 0111 less the umask (a private staging folder must not leak)
    assert stat.S_IMODE(result.out_dir.stat().st_mode) == 0o777 & ~umask
