"""Parameter sweeps: expand a sweep file into resolved scenarios and run them on Dask.

A sweep file::

    name: bandwidth_devices
    base: ../quickstart.yaml                  # relative to the sweep file
    seeds: [1, 2]
    overrides: {training: none}               # applied to every point (optional)
    grid:                                     # cartesian product, in the order written ...
      channel.uplink_bandwidth_hz: [5.0e5, 1.0e6]
      devices.count: [20, 40]
    # ... or instead an explicit list:  points: [{channel.allocator.kind: equal_share}, ...]
    target_accuracy: 0.85                     # for time-to-target in the summary (optional)

Layout (``<out>/sweeps/<name>-<hash>/``, the hash of every resolved point, so different sweeps
never share a folder): ``sweep.yaml`` (the file as read), ``points/<scenario>-<hash>/`` (one
ordinary run folder per point, created by one rename when the point is complete),
``failed/<point>.json`` (the error of a point that raised), ``table.parquet`` (tidy: one row
per point and published version) and ``summary.parquet`` (one row per point).

Resume: a point whose folder exists is complete and is never run again; a point killed midway
left at most a ``.staging`` folder, which the next run discards.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.config import Scenario
from simulator.engine.runner import run, run_dir_name
from simulator.engine.world import preflight
from simulator.errors import Problem, ScenarioError
from simulator.loader import apply_overrides, load_spec_with_base, validate_scenario
from simulator.outputs import write_json, write_table, write_yaml
from simulator.studies.results import time_to_accuracy_s

MAX_SWEEP_POINTS = 10_000  # one sweep file; split a larger study into several


class SweepFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    base: str
    seeds: list[int] = Field(default=[0], min_length=1)
    overrides: dict[str, Any] = {}
    grid: dict[str, list[Any]] | None = None
    points: list[dict[str, Any]] | None = None
    target_accuracy: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _grid_or_points(self):
        if (self.grid is None) == (self.points is None):
            raise ValueError("give exactly one of grid and points")
        if self.grid is not None:
            if not self.grid:
                raise ValueError("grid is empty: name at least one field path")
            empty = [k for k, v in self.grid.items() if not v]
            if empty:
                raise ValueError(f"grid entries with no values: {', '.join(empty)}")
        if self.points is not None and not self.points:
            raise ValueError("points is empty")
        return self


@dataclass(frozen=True)
class SweepPoint:
    """One resolved scenario of a sweep and the parameters that made it."""

    index: int
    params: dict[str, Any]  # swept field path -> value (seed included)
    scenario: Scenario

    @property
    def folder(self) -> str:
        return run_dir_name(self.scenario)


@dataclass(frozen=True)
class Sweep:
    spec: SweepFile
    source: Path
    points: list[SweepPoint]

    @property
    def param_names(self) -> list[str]:
        return list(dict.fromkeys(k for p in self.points for k in p.params))

    def folder(self, out_root: str | Path) -> Path:
        digest = hashlib.sha256(
            "\n".join(p.folder for p in self.points).encode("utf-8")
        ).hexdigest()[:10]
        return Path(out_root) / "sweeps" / f"{self.spec.name}-{digest}"


def load_sweep_file(path: str | Path) -> Sweep:
    """Read, expand and validate every point. Raises ScenarioError before anything runs."""
    path = Path(path)
    spec, base = load_spec_with_base(path, SweepFile)
    size = len(spec.seeds) * (
        math.prod(len(v) for v in spec.grid.values()) if spec.grid else len(spec.points or [])
    )
    if size > MAX_SWEEP_POINTS:
        where = "grid" if spec.grid is not None else "points"
        expected = f"at most {MAX_SWEEP_POINTS:,} points (combinations x seeds)"
        raise ScenarioError(path, [Problem(where, expected, f"{size:,}")])
    if spec.grid is not None:
        keys = list(spec.grid)
        combos = [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*spec.grid.values())
        ]
    else:
        combos = [dict(p) for p in spec.points or []]
    points: list[SweepPoint] = []
    problems: list[tuple[str, Problem]] = []
    for combo in combos:
        for seed in spec.seeds:
            params = {**combo, "seed": seed}
            label = ", ".join(f"{k}={v!r}" for k, v in params.items())
            try:
                data = apply_overrides(apply_overrides(base, spec.overrides), params)
                scenario = validate_scenario(data, f"{path} (point {label})")
                preflight(scenario, f"{path} (point {label})")  # rules across fields, files
            except ScenarioError as exc:
                problems.extend((label, p) for p in exc.problems)
                continue
            points.append(SweepPoint(len(points), params, scenario))
    if problems:
        raise ScenarioError(path, _group(problems))
    return Sweep(spec, path, points)


def _group(problems: list[tuple[str, Problem]]) -> list[Problem]:
    """The same mistake in many points is reported once, naming the first point and a count."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for label, p in problems:
        groups.setdefault((p.field_path, p.expected, p.found), []).append(label)
    out = []
    for (field_path, expected, found), labels in groups.items():
        more = f" and {len(labels) - 1} more points" if len(labels) > 1 else ""
        out.append(Problem(f"point ({labels[0]}){more}: {field_path}", expected, found))
    return out


def run_point(scenario_json: dict, points_dir: str, failed_dir: str, point_name: str) -> dict:
    """Run one point (in a Dask worker). Never raises: errors are written and returned."""
    import torch

    torch.set_num_threads(1)  # one process per core: no oversubscription
    scenario = Scenario.model_validate(scenario_json)
    started = time.perf_counter()
    try:
        result = run(scenario, out_root=points_dir)
        # a point that failed in an earlier attempt and now completed has no error any more
        (Path(failed_dir) / f"{point_name}.json").unlink(missing_ok=True)
        return {"ok": True, "summary": result.summary, "wall_s": time.perf_counter() - started}
    except Exception as exc:  # a point that fails must not stop the sweep
        error = {
            "point": point_name,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "scenario": scenario_json,
        }
        write_json(Path(failed_dir) / f"{point_name}.json", error)
        return {"ok": False, "error": error["error"], "wall_s": time.perf_counter() - started}


@dataclass(frozen=True)
class TLSFiles:
    """Certificates for a ``tls://`` scheduler: the CA that signed the cluster's certificates,
    and this client's certificate and key (PEM files)."""

    ca_file: Path
    cert: Path
    key: Path


LOOPBACK_HOSTS = ("127.", "localhost", "[::1]")


def check_scheduler(scheduler: str | None, tls: TLSFiles | None) -> list[str]:
    """Problems with a scheduler address and TLS files, as ``field: expected ..., found ...``
    lines (empty when they fit together). Checked before anything runs."""
    if scheduler is None:
        return [] if tls is None else ["--tls-*: expected them only with --scheduler tls://..."]
    problems = []
    scheme = scheduler.split("://", 1)[0] if "://" in scheduler else ""
    if scheme not in ("tcp", "tls"):
        problems.append(
            f"--scheduler: expected tls://HOST:PORT or tcp://HOST:PORT, found {scheduler!r}"
        )
    if scheme == "tls" and tls is None:
        problems.append(
            "--tls-ca-file, --tls-cert, --tls-key: expected all three with a tls:// scheduler, "
            "found none"
        )
    if scheme == "tcp" and tls is not None:
        problems.append(f"--scheduler: expected tls://... with --tls-* files, found {scheduler!r}")
    if tls is not None:
        for flag, path in (
            ("--tls-ca-file", tls.ca_file),
            ("--tls-cert", tls.cert),
            ("--tls-key", tls.key),
        ):
            if not Path(path).is_file():
                problems.append(f"{flag}: expected a readable PEM file, found no file at {path}")
    return problems


def plain_tcp_warning(scheduler: str | None) -> str | None:
    """A one-line warning for a plain ``tcp://`` scheduler that is not on this machine."""
    if scheduler is None or not scheduler.startswith("tcp://"):
        return None
    host = scheduler[len("tcp://") :]
    if host.startswith(LOOPBACK_HOSTS):
        return None
    return (
        f"warning: {scheduler} is neither encrypted nor authenticated: anyone who can reach it can "
        "run code on every worker and read every result; use tls:// (README, multi-machine sweeps)"
    )


class SchedulerUnreachable(RuntimeError):
    """The sweep could not connect to its scheduler (address, network, or certificates)."""


def _client(scheduler: str | None, workers: int | None, tls: TLSFiles | None = None):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        security = None
        if tls is not None:
            from distributed.security import Security

            security = Security(
                tls_ca_file=str(tls.ca_file),
                tls_client_cert=str(tls.cert),
                tls_client_key=str(tls.key),
                require_encryption=True,
            )
        try:
            return Client(scheduler, security=security, timeout="10s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SchedulerUnreachable(f"{scheduler}: cannot connect: {reason}") from None
    # the local default: loopback only, no dashboard (nothing listens beyond this machine)
    cluster = LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    )
    return Client(cluster), cluster


def run_sweep(
    sweep: Sweep,
    out_root: str | Path = "runs",
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    tls: TLSFiles | None = None,
    on_progress=None,
    point_runner=run_point,
) -> Path:
    """Run the points not yet complete on Dask, then gather the tables. Returns the folder.
    Raises :class:`SchedulerUnreachable` when ``scheduler`` cannot be reached.
    ``point_runner`` (``run_point``'s signature) runs one point in a worker."""
    from dask.distributed import as_completed

    folder = sweep.folder(out_root)
    points_dir, failed_dir = folder / "points", folder / "failed"
    points_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(folder / "sweep.yaml", sweep.spec.model_dump(mode="json"))
    todo = [p for p in sweep.points if not (points_dir / p.folder / "summary.json").exists()]
    done, failed = len(sweep.points) - len(todo), 0
    if on_progress:
        on_progress(done=done, failed=0, running=0, total=len(sweep.points))
    if todo:
        client, cluster = _client(scheduler, workers, tls)
        try:
            futures = [
                client.submit(
                    point_runner,
                    p.scenario.model_dump(mode="json"),
                    str(points_dir),
                    str(failed_dir),
                    p.folder,
                    # no fixed key: on a shared cluster two sweeps with the same point but
                    # different output folders must not be merged into one task
                    pure=False,
                )
                for p in todo
            ]
            slots = sum(client.nthreads().values()) or 1
            for future in as_completed(futures):
                outcome = future.result()
                done += outcome["ok"]
                failed += not outcome["ok"]
                remaining = len(sweep.points) - done - failed
                if on_progress:
                    on_progress(
                        done=done,
                        failed=failed,
                        running=min(slots, remaining),
                        total=len(sweep.points),
                    )
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    gather_tables(sweep, folder)
    return folder


def gather_tables(sweep: Sweep, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One tidy table (point x version rows) and one summary row per point (``status``:
    completed and the run's own statuses, ``failed``, or ``pending``), both Parquet."""
    import pyarrow as pa

    tables, summaries = [], []
    for p in sweep.points:
        run_dir = folder / "points" / p.folder
        status = "pending"
        if (run_dir / "summary.json").exists():
            m = pd.read_parquet(run_dir / "metrics.parquet")
            summary = json.loads((run_dir / "summary.json").read_text())
            status = summary["status"]
            tables.append(
                m.assign(point=p.folder, **{k: [v] * len(m) for k, v in _columns(p.params).items()})
            )
            acc = m["accuracy"].dropna()
            pacc = m.get("personal_accuracy_mean", pd.Series(dtype=float)).dropna()
            summaries.append(
                {
                    "point": p.folder,
                    **_columns(p.params),
                    "status": status,
                    "versions": len(m),
                    "virtual_time_s": float(m.time_s.iloc[-1]) if len(m) else 0.0,
                    "mean_round_latency_s": float(m.round_latency_s.mean()) if len(m) else math.nan,
                    "final_accuracy": float(acc.iloc[-1]) if len(acc) else math.nan,
                    "final_personal_accuracy": float(pacc.iloc[-1]) if len(pacc) else math.nan,
                    "time_to_target_s": time_to_accuracy_s(m, sweep.spec.target_accuracy),
                }
            )
        elif (folder / "failed" / f"{p.folder}.json").exists():
            error = json.loads((folder / "failed" / f"{p.folder}.json").read_text())["error"]
            summaries.append(
                {"point": p.folder, **_columns(p.params), "status": "failed", "error": error}
            )
        else:  # neither complete nor failed (an interrupted sweep): listed, never dropped
            summaries.append({"point": p.folder, **_columns(p.params), "status": "pending"})
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    summary = pd.DataFrame(summaries)
    write_table(folder / "table.parquet", pa.Table.from_pandas(table, preserve_index=False))
    write_table(folder / "summary.parquet", pa.Table.from_pandas(summary, preserve_index=False))
    return table, summary


def _columns(params: dict[str, Any]) -> dict[str, Any]:
    """Swept values as table columns; mappings (e.g. a whole allocator) become their JSON."""
    return {
        k: (json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v)
        for k, v in params.items()
    }
