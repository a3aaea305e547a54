"""``run(scenario)``: build the world, run the SimPy processes, write the results folder.

Output layout (``runs/<name>-<hash>/``, the hash of the resolved scenario):
``scenario.resolved.yaml``, ``metrics.parquet`` (one row per published version),
``events.parquet`` (one row per event), ``devices.parquet`` (one row per device: jobs,
updates, failures, busy/offline/idle time, bits), ``summary.json``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import simpy

from devices.availability import AlwaysOn
from devices.population import make_mobility
from simulator.config import Scenario
from simulator.engine.async_job import CallbackJob
from simulator.engine.learning import evaluate_global
from simulator.engine.processes import RunContext, device_availability, device_mobility, sync_server
from simulator.engine.recorder import Recorder
from simulator.engine.world import World, build
from simulator.outputs import (
    check_out_root,
    publish_dir,
    staging_dir,
    write_json,
    write_table,
    write_yaml,
)


@dataclass(frozen=True)
class RunResult:
    """What a run produced; ``out_dir`` is None when nothing was written."""

    scenario: Scenario
    metrics: pa.Table
    events: pa.Table
    devices: pa.Table  # one row per device: jobs, updates, busy/idle time, bits
    summary: dict
    out_dir: Path | None


def scenario_hash(scenario: Scenario) -> str:
    """Short, stable hash of the fully resolved scenario (names the output folder)."""
    text = json.dumps(scenario.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def run_dir_name(scenario: Scenario) -> str:
    return f"{scenario.name}-{scenario_hash(scenario)}"


def simulate_world(
    world: World, *, on_version: Callable[[dict], None] | None = None
) -> tuple[Recorder, RunContext]:
    """Run the SimPy processes over an already built world (tests may adjust it first)."""
    env = simpy.Environment()
    recorder = Recorder(world.scenario.output.events)
    if isinstance(world.availability, AlwaysOn):  # no stream to draw from: all online
        online = np.ones(world.num_devices, dtype=bool)
    else:
        online = np.array(
            [
                world.availability.initially_online(
                    world.streams.numpy("availability", d, 0), device_id=d
                )
                for d in range(world.num_devices)
            ],
            dtype=bool,
        )
    ctx = RunContext(world=world, recorder=recorder, online=online, on_version=on_version)
    if world.data is not None and not world.scenario.systems_only:
        untrained = evaluate_global(world)["loss"]
        ctx.reference_loss = max(untrained, math.log(world.data.num_classes))
    # Availability processes start in device order; always-on devices need none.
    if not isinstance(world.availability, AlwaysOn):
        for d in range(world.num_devices):
            rng = world.streams.numpy("availability", d, 1)
            env.process(device_availability(env, ctx, d, rng))
    # mobility: positions move at the coherence-block boundaries (or every update_s)
    mobility = make_mobility(world.scenario.devices, world.streams.numpy("devices", "mobility"))
    if mobility is not None:
        block_s = float(getattr(world.scenario.channel.fading, "coherence_s", 1.0))
        update_s = getattr(world.scenario.devices.mobility, "update_s", None)
        env.process(device_mobility(env, ctx, mobility, float(update_s or block_s)))
    # the strategy's declared mode picks the server process
    if "async" in world.strategy.modes:
        from simulator.engine.async_processes import async_server

        server = env.process(async_server(env, ctx))
    else:
        server = env.process(sync_server(env, ctx))
    # Everything built so far (torch's and numpy's modules, the world, the data) lives for
    # the whole run: frozen out of the garbage collector's reach, its full collections walk
    # only what the run itself allocates (they took a fifth of an asynchronous 10k-device run)
    gc.freeze()
    try:
        env.run(until=server)
    finally:
        gc.unfreeze()
    _check_deliveries(ctx)
    ctx.end_s = env.now
    # Jobs still in flight when the run stops (a time limit) are closed now, in device order,
    # so their counters land before the tables are built, not whenever the garbage collector
    # reaches them.
    for dev in sorted(ctx.running):
        job = ctx.running[dev]
        if isinstance(job, CallbackJob):
            job.close()
        else:
            job._generator.close()
    return recorder, ctx


def _check_deliveries(ctx: RunContext) -> None:
    """A run in which no device ever delivered measured nothing: say so in its status."""
    metrics = ctx.recorder.metrics
    if ctx.status in ("completed", "time_limit"):
        if sum(m["n_delivered"] for m in metrics) == 0:
            reasons = sorted(ctx.recorder.failure_reasons()) or ["none recorded"]
            ctx.status = "no_deliveries"
            ctx.notes.insert(
                0,
                f"no device delivered an update in {len(metrics)} versions (failure reasons: "
                f"{', '.join(reasons)}); the channel, deadline or availability never allows one",
            )


def simulate(
    scenario: Scenario,
    *,
    on_version: Callable[[dict], None] | None = None,
    source: str = "scenario",
) -> tuple[Recorder, RunContext, float]:
    """Build and run the simulation in memory. Returns (recorder, context, wall seconds)."""
    started = time.perf_counter()
    recorder, ctx = simulate_world(build(scenario, source), on_version=on_version)
    return recorder, ctx, time.perf_counter() - started


def summarize(scenario: Scenario, recorder: Recorder, ctx: RunContext, wall_s: float) -> dict:
    metrics = recorder.metrics
    accuracies = [m["accuracy"] for m in metrics if not math.isnan(m["accuracy"])]
    latencies = [m["round_latency_s"] for m in metrics]
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "hash": scenario_hash(scenario),
        "status": ctx.status,
        "versions": ctx.version,
        "virtual_time_s": metrics[-1]["time_s"] if metrics else 0.0,
        "mean_round_latency_s": float(np.mean(latencies)) if latencies else math.nan,
        "final_accuracy": accuracies[-1] if accuracies else None,
        "best_accuracy": max(accuracies) if accuracies else None,
        "failures": int(sum(m["n_failed"] for m in metrics)),
        "bits_up": int(sum(m["bits_up"] for m in metrics)),
        "bits_down": int(sum(m["bits_down"] for m in metrics)),
        "energy_j": float(sum(m["energy_compute_j"] + m["energy_tx_j"] for m in metrics)),
        "events": recorder.num_events,
        "wall_time_s": wall_s,
        "training_device": _device_name(ctx.world.training_device),
        "allocation_wall_s": ctx.allocation_wall_s,
        "notes": ctx.notes,
        **staleness_summary(ctx.staleness),
    }


def _device_name(device) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA H200)``: which hardware produced the numbers."""
    if device.type != "cuda":
        return device.type
    import torch

    return f"{device} ({torch.cuda.get_device_name(device)})"


def staleness_summary(staleness: list[int]) -> dict:
    """Asynchronous runs: staleness of the applied arrivals, mean and histogram {s: count}."""
    if not staleness:
        return {}
    values, counts = np.unique(np.asarray(staleness), return_counts=True)
    return {
        "mean_staleness": float(np.mean(staleness)),
        "staleness_histogram": {str(v): int(c) for v, c in zip(values, counts, strict=True)},
    }


def run(
    scenario: Scenario,
    *,
    out_root: str | Path | None = "runs",
    csv: bool = False,
    on_version: Callable[[dict], None] | None = None,
    source: str = "scenario",
) -> RunResult:
    """Run a scenario and (unless ``out_root`` is None) write its results folder atomically.
    ``out_root`` is checked first (:class:`simulator.outputs.OutputFolderError`)."""
    if out_root is not None:
        check_out_root(out_root)
    recorder, ctx, wall_s = simulate(scenario, on_version=on_version, source=source)
    summary = summarize(scenario, recorder, ctx, wall_s)
    metrics, events = recorder.metrics_table(), recorder.events_table()
    devices = ctx.device_stats.table(ctx.end_s, ctx.world.static_device_columns())
    out_dir = None
    if out_root is not None:
        out_dir = Path(out_root) / run_dir_name(scenario)
        staging = staging_dir(Path(out_root), out_dir.name)
        try:
            write_yaml(staging / "scenario.resolved.yaml", scenario.model_dump(mode="json"))
            write_table(staging / "metrics.parquet", metrics, csv=csv)
            write_table(staging / "events.parquet", events, csv=csv)
            write_table(staging / "devices.parquet", devices, csv=csv)
            write_json(staging / "summary.json", summary)
            publish_dir(staging, out_dir)
        except BaseException:  # a full disk, a signal: no hidden half-result holds space
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return RunResult(scenario, metrics, events, devices, summary, out_dir)
