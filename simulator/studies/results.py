"""Load results into pandas for notebooks: ``load_run(dir)`` and ``load_sweep(dir)``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml


@dataclass(frozen=True)
class RunData:
    """A run folder: ``metrics`` (one row per version), ``events``, ``devices`` (one row per
    device), ``summary``, ``scenario``."""

    path: Path
    metrics: pd.DataFrame
    events: pd.DataFrame
    summary: dict
    scenario: dict
    devices: pd.DataFrame


def load_run(path: str | Path) -> RunData:
    path = Path(path)
    if not (path / "summary.json").exists():
        raise FileNotFoundError(f"{path} is not a complete run folder (no summary.json)")
    return RunData(
        path=path,
        metrics=pd.read_parquet(path / "metrics.parquet"),
        events=pd.read_parquet(path / "events.parquet"),
        summary=json.loads((path / "summary.json").read_text()),
        scenario=yaml.safe_load((path / "scenario.resolved.yaml").read_text()),
        # folders written before the per-device table existed have none
        devices=pd.read_parquet(path / "devices.parquet")
        if (path / "devices.parquet").exists()
        else pd.DataFrame(),
    )


@dataclass(frozen=True)
class SweepData:
    """A sweep folder: the tidy ``table`` (point x version) and one ``summary`` row per point."""

    path: Path
    table: pd.DataFrame
    summary: pd.DataFrame
    params: list[str]


def load_sweep(path: str | Path) -> SweepData:
    path = Path(path)
    if not (path / "summary.parquet").exists():
        raise FileNotFoundError(f"{path} is not a gathered sweep folder (no summary.parquet)")
    spec = yaml.safe_load((path / "sweep.yaml").read_text())
    params = list(spec.get("grid") or {}) or list(
        dict.fromkeys(k for p in spec.get("points") or [] for k in p)
    )
    return SweepData(
        path=path,
        table=pd.read_parquet(path / "table.parquet"),
        summary=pd.read_parquet(path / "summary.parquet"),
        params=[*params, "seed"],
    )


def time_to_accuracy_s(metrics: pd.DataFrame, target: float | None) -> float:
    """Virtual time (s) of the first evaluated version whose accuracy (the global model's, or
    the mean personalised accuracy when only that is measured) is >= ``target``; nan when
    never reached or no target is given."""
    if target is None:
        return float("nan")
    m = metrics
    acc = m["personal_accuracy_mean"] if m["accuracy"].isna().all() else m["accuracy"]
    hit = m.loc[acc >= target, "time_s"]
    return float(hit.iloc[0]) if len(hit) else float("nan")
