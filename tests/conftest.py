"""Shared test helpers: a tiny scenario that any test can tweak by dotted key paths."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import settings

from simulator.config import Scenario
from simulator.loader import apply_overrides, validate_scenario

# Derandomized in CI so a red build is reproducible; locally hypothesis explores freely.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

TINY = {
    "name": "tiny",
    "seed": 1,
    "simulation": {"rounds": 3},
    "devices": {
        "count": 4,
        "cpu_hz": {"dist": "uniform", "low": 1e8, "high": 1e9},
        "cycles_per_sample": 1e5,
        "tx_power_dbm": 20,
        "placement": {"kind": "disc", "radius_m": 300},
    },
    "channel": {
        "pathloss": {"kind": "macro_3gpp", "shadowing_std_db": 0},
        "fading": {"kind": "none"},
        "uplink_bandwidth_hz": 1e6,
        "downlink_bandwidth_hz": 4e6,
        "allocator": {"kind": "equal_share"},
    },
    "data": {"kind": "digits", "partition": {"kind": "iid"}},
    "model": {"kind": "mlp", "hidden": [8]},
    "training": {"local_steps": 2, "batch_size": 8, "lr": 0.1},
    "strategy": {"kind": "fedavg"},
}


def run_wedge(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, as a user runs it: (returncode, stdout, stderr) as text."""
    return subprocess.run(
        [sys.executable, "-m", "simulator.cli", *args], capture_output=True, text=True, check=False
    )


def make_scenario(overrides: dict | None = None, base: dict = TINY) -> Scenario:
    """The tiny scenario with ``{"a.b": value}`` overrides applied, validated."""
    return validate_scenario(apply_overrides(base, overrides or {}), "test")


@pytest.fixture
def tiny() -> Scenario:
    return make_scenario()


def same_table(a, b) -> bool:
    """Arrow tables equal cell by cell, NaN equal to NaN (Arrow's own equals says NaN != NaN)."""
    return a.schema == b.schema and a.to_pandas().equals(b.to_pandas())
