"""SimPy processes: the synchronous server, one job per selected device, and availability.

Time lives here and only here. Every phase is a timeout; a job interrupted by the round deadline
or by its device going offline becomes a ``Failure`` with that reason. Processes are started in
sorted device order and nothing iterates a set, so a seed fixes the whole event log.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import simpy

from channels.units import dbm_to_w
from devices.timing import compute_energy_j
from fl.state import Failure
from simulator.engine.device_stats import DeviceStats
from simulator.engine.learning import (
    PERSONAL_NAN,
    evaluate_global,
    is_diverged,
    personal_accuracy,
    train_and_aggregate,
)
from simulator.engine.recorder import SERVER, Recorder
from simulator.engine.round_plan import plan_round
from simulator.engine.shared_uplink import SharedUplink
from simulator.engine.world import World


@dataclass
class RunContext:
    """Mutable run state shared by the processes."""

    world: World
    recorder: Recorder
    online: np.ndarray  # [n_devices] bool
    running: dict[int, simpy.Process] = field(default_factory=dict)
    version: int = 0
    status: str = "running"
    allocation_wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    on_version: Callable[[dict], None] | None = None
    shared_uplink: SharedUplink | None = None  # set by the async server when re-sharing
    staleness: list[int] = field(default_factory=list)  # per applied async arrival
    end_s: float = 0.0  # virtual time when the run stopped
    device_stats: DeviceStats = field(init=False)

    def __post_init__(self) -> None:
        self.device_stats = DeviceStats(len(self.online))
        for d in np.flatnonzero(~self.online).tolist():  # offline from the start
            self.device_stats.went_offline(d, 0.0)


# Statuses that end a run before its version or time limit.
STOPPING = ("diverged", "target_reached")


def check_target(ctx: RunContext, row: dict) -> None:
    """Stop the run (status ``target_reached``) once the evaluated accuracy reaches
    ``simulation.target_accuracy``: the global model's, or the mean personalised accuracy for
    personalised strategies."""
    target = ctx.world.scenario.simulation.target_accuracy
    if target is None:
        return
    key = "personal_accuracy_mean" if ctx.world.strategy.personalized else "accuracy"
    value = row.get(key, math.nan)
    if not math.isnan(value) and value >= target:
        ctx.status = "target_reached"
        ctx.notes.append(f"target accuracy {target} reached at version {row['version']}")


@dataclass(frozen=True)
class Job:
    """One device's work in one round: phase durations (s) from the round plan."""

    device_id: int
    round_idx: int
    downlink_s: float
    compute_s: float
    uplink_s: float
    bandwidth_hz: float
    uplink_bits: int = 0
    downlink_bits: int = 0
    gamma_ul_hz: float = math.nan  # for a re-shared uplink (``uplink_s`` then unknown)


@dataclass(frozen=True)
class JobOutcome:
    """What a job achieved: time spent per phase (s), and the failure reason if it stopped."""

    device_id: int
    phases_done: int  # 0..3: downlink, compute, uplink completed
    reason: str
    finished_at_s: float
    downlink_spent_s: float
    compute_spent_s: float
    uplink_spent_s: float

    @property
    def delivered(self) -> bool:
        return self.phases_done == 3


def client_job(env: simpy.Environment, ctx: RunContext, job: Job):
    """Downlink, then compute, then uplink; an Interrupt stops it where it is."""
    rec, stats = ctx.recorder, ctx.device_stats
    dev, rnd = job.device_id, job.round_idx
    spent = [0.0, 0.0, 0.0]
    phase = 0
    phase_start = env.now
    try:
        rec.event(env.now, "downlink_start", dev, rnd, job.downlink_s)
        yield env.timeout(job.downlink_s)
        spent[0], phase, phase_start = job.downlink_s, 1, env.now
        stats.bits_down[dev] += job.downlink_bits
        rec.event(env.now, "compute_start", dev, rnd, job.compute_s)
        yield env.timeout(job.compute_s)
        spent[1], phase, phase_start = job.compute_s, 2, env.now
        if ctx.shared_uplink is None:
            rec.event(env.now, "uplink_start", dev, rnd, job.uplink_s, job.bandwidth_hz)
            yield env.timeout(job.uplink_s)
        else:  # duration unknown: the share changes as other transfers start and end
            rec.event(env.now, "uplink_start", dev, rnd)
            yield from ctx.shared_uplink.send(dev, job.uplink_bits, job.gamma_ul_hz)
        spent[2] = env.now - phase_start
        rec.event(env.now, "upload_done", dev, rnd)
        stats.bits_up[dev] += job.uplink_bits
        stats.updates[dev] += 1
        return JobOutcome(dev, 3, "", env.now, *spent)
    except simpy.Interrupt as stop:
        spent[phase] = env.now - phase_start
        reason = str(stop.cause)
        rec.event(env.now, "failure", dev, rnd, detail=reason)
        stats.failures[dev] += 1
        return JobOutcome(dev, phase, reason, env.now, *spent)
    finally:
        ctx.running.pop(dev, None)
        stats.jobs[dev] += 1
        stats.busy_s[dev] += sum(spent)


def device_availability(env: simpy.Environment, ctx: RunContext, device_id: int, rng):
    """Flip a device online/offline; going offline interrupts its running job."""
    availability = ctx.world.availability
    while True:
        online = bool(ctx.online[device_id])
        wait_s = availability.next_change_s(rng, device_id=device_id, online=online, now_s=env.now)
        if not math.isfinite(wait_s):
            return
        yield env.timeout(wait_s)
        ctx.online[device_id] = not online
        ctx.recorder.event(env.now, "offline" if online else "online", device_id)
        if online:
            ctx.device_stats.went_offline(device_id, env.now)
        else:
            ctx.device_stats.came_online(device_id, env.now)
        job = ctx.running.get(device_id)
        if online and job is not None and job.is_alive:
            job.interrupt("offline")


@dataclass(frozen=True)
class RoundOutcomes:
    """A round's job outcomes as arrays [n] in cohort order (one pass over the objects)."""

    device_id: np.ndarray
    phases_done: np.ndarray
    finished_at_s: np.ndarray
    spent_s: np.ndarray  # [n, 3]: downlink, compute, uplink time actually spent

    @classmethod
    def of(cls, outcomes: list[JobOutcome]) -> RoundOutcomes:
        rows = [
            (
                o.device_id,
                o.phases_done,
                o.finished_at_s,
                o.downlink_spent_s,
                o.compute_spent_s,
                o.uplink_spent_s,
            )
            for o in outcomes
        ]
        table = np.array(rows, dtype=float).reshape(-1, 6)
        return cls(
            table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2], table[:, 3:]
        )

    @property
    def delivered(self) -> np.ndarray:
        return self.phases_done == 3


def _round_breakdown(done: RoundOutcomes, latency_s: float) -> dict:
    """Critical-path split of the round latency: the last device to deliver, plus waiting.

    ``wait_s`` is the part of the round nobody's delivered work explains (a deadline that cut
    the round, or every device failing); ``mean_device_idle_s`` is how long delivering devices
    sat idle waiting for the round to close.
    """
    delivered = np.flatnonzero(done.delivered)
    if delivered.size == 0:
        return {
            "downlink_s": 0.0,
            "compute_s": 0.0,
            "uplink_s": 0.0,
            "wait_s": latency_s,
            "mean_device_idle_s": math.nan,
        }
    # last to finish; ties go to the highest device id, as in the event order. Min-max
    # allocation makes every device finish together, so finish times within float rounding
    # (1e-9 relative) are ties: otherwise the choice would follow the last ulp of a solver.
    finished = done.finished_at_s[delivered]
    tied = finished >= finished.max() * (1.0 - 1e-9)
    crit = done.spent_s[delivered[tied][np.argmax(done.device_id[delivered][tied])]]
    busy = done.spent_s[delivered].sum(axis=1)
    return {
        "downlink_s": float(crit[0]),
        "compute_s": float(crit[1]),
        "uplink_s": float(crit[2]),
        "wait_s": max(latency_s - float(crit.sum()), 0.0),
        "mean_device_idle_s": float(np.mean(latency_s - busy)),
    }


def energy_j(world: World, device_ids, compute_spent_s, uplink_spent_s) -> tuple[float, float]:
    """(compute J, transmit J) for the time devices actually spent computing and sending,
    interrupted jobs included; arrays [n] (both engines use it)."""
    pop = world.population
    ids = np.asarray(device_ids, dtype=np.int64)
    f = pop.cpu_hz[ids]
    compute = compute_energy_j(pop.kappa[ids], f * np.asarray(compute_spent_s), f).sum()
    transmit = dbm_to_w(pop.tx_power_dbm[ids]) * np.asarray(uplink_spent_s)
    return float(compute), float(transmit.sum())


def sync_server(env: simpy.Environment, ctx: RunContext):
    """Synchronous rounds until ``simulation.rounds`` versions are published (or a limit)."""
    world = ctx.world
    sim = world.scenario.simulation
    rec = ctx.recorder
    all_ids = np.arange(world.num_devices)
    round_idx = 0
    while ctx.version < sim.rounds:
        if sim.max_time_s is not None and env.now >= sim.max_time_s:
            ctx.status = "time_limit"
            return
        # 1. select among online devices
        available = all_ids[ctx.online].tolist()
        cohort = (
            world.strategy.select(
                round_idx=round_idx,
                available_ids=available,
                rng=world.streams.numpy("select", round_idx),
            )
            if available
            else []
        )
        if not cohort:
            rec.event(env.now, "no_device_online", SERVER, round_idx)
            yield env.timeout(sim.idle_retry_s)
            continue
        round_start_s = env.now
        # 2. channels and bandwidth for the whole cohort at once
        plan = plan_round(world, cohort, env.now, round_idx)
        status = plan.allocation_status
        rec.event(
            env.now, "round_start", SERVER, round_idx, plan.predicted_latency_s, detail=status
        )
        ctx.allocation_wall_s += plan.solve_time_s  # wall clock: summary only, never metrics
        if status not in ("optimal", "heuristic", "no_pruning_needed"):
            ctx.notes.append(f"round {round_idx}: allocation {status}")
        # 3. one job per device; devices no bandwidth can serve fail at once
        failures: list[Failure] = []
        procs: list[simpy.Process] = []
        reachable = np.isfinite(plan.total_s)
        for i in np.flatnonzero(~reachable).tolist():
            dev = int(plan.device_ids[i])
            reason = "infeasible" if plan.dropped[i] else "unreachable"
            rec.event(env.now, "failure", dev, round_idx, detail=reason)
            failures.append(Failure(dev, reason, env.now))
        for i in np.flatnonzero(reachable).tolist():
            dev = int(plan.device_ids[i])
            job = Job(
                dev,
                round_idx,
                float(plan.downlink_s[i]),
                float(plan.compute_s[i]),
                float(plan.uplink_s[i]),
                float(plan.uplink_bandwidth_hz[i]),
                uplink_bits=int(plan.uplink_bits[i]),
                downlink_bits=plan.bits_down,
            )
            proc = env.process(client_job(env, ctx, job))
            ctx.running[dev] = proc
            procs.append(proc)
        # 4. wait for everyone, or for the deadline and then stop the stragglers
        everyone = env.all_of(procs)
        if sim.deadline_s is not None:
            yield everyone | env.timeout(sim.deadline_s)
            for proc in procs:
                if proc.is_alive:
                    proc.interrupt("deadline")
            yield env.all_of(procs)
        else:
            yield everyone
        outcomes: list[JobOutcome] = [cast(JobOutcome, p.value) for p in procs]
        done = RoundOutcomes.of(outcomes)
        failures += [
            Failure(o.device_id, o.reason, o.finished_at_s) for o in outcomes if not o.delivered
        ]
        delivered = done.device_id[done.delivered].tolist()
        latency_s = env.now - round_start_s
        # 5. learn (zero virtual time), publish, evaluate
        slot = np.searchsorted(plan.device_ids, done.device_id[done.delivered])
        row = _publish(ctx, round_idx, delivered, plan.rho[slot], failures)
        energy_compute, energy_tx = energy_j(
            world, done.device_id, done.spent_s[:, 1], done.spent_s[:, 2]
        )
        row.update(
            round=round_idx,
            time_s=env.now,
            round_start_s=round_start_s,
            round_latency_s=latency_s,
            **_round_breakdown(done, latency_s),
            n_selected=len(cohort),
            n_delivered=len(delivered),
            n_failed=len(failures),
            bits_down=plan.bits_down * int((done.phases_done >= 1).sum()),
            bits_up=int(plan.uplink_bits[slot].sum()),
            energy_compute_j=energy_compute,
            energy_tx_j=energy_tx,
            allocation_status=status,
            predicted_latency_s=plan.predicted_latency_s,
            mean_rho=float(plan.rho[reachable].mean()) if reachable.any() else math.nan,
            t_max_s=plan.t_max_s,
            kkt_residual=max(plan.certificate.values()) if plan.certificate else math.nan,
        )
        rec.event(env.now, "publish", SERVER, round_idx, latency_s, detail=f"version {ctx.version}")
        rec.metric_row(row)
        if ctx.on_version is not None:
            ctx.on_version(row)
        if ctx.status in STOPPING:
            return
        round_idx += 1
    ctx.status = "completed"


def _publish(
    ctx: RunContext,
    round_idx: int,
    delivered: list[int],
    rho: np.ndarray,
    failures: list[Failure],
) -> dict:
    """Aggregate (full mode) and bump the version; returns the learning columns of the row."""
    world = ctx.world
    row: dict = {
        "version": ctx.version + 1,
        "accuracy": math.nan,
        "loss": math.nan,
        "train_loss": math.nan,
        **PERSONAL_NAN,
    }
    if not world.scenario.systems_only:
        step = train_and_aggregate(
            world,
            round_idx=round_idx,
            version=ctx.version,
            delivered=delivered,
            rho=rho,
            failures=failures,
        )
        world.global_state = step.new_state
        row["train_loss"] = step.train_loss
        computed = [step.train_loss] if delivered else []
        every = world.scenario.training.eval_every
        last = ctx.version + 1 == world.scenario.simulation.rounds
        if (ctx.version + 1) % every == 0 or last:
            if not world.strategy.personalized:
                row["accuracy"], row["loss"] = evaluate_global(world)
                computed.append(row["loss"])
            row.update(personal_accuracy(world))
        if is_diverged(world.global_state, *computed):
            ctx.status = "diverged"
            ctx.notes.append(f"model diverged in round {round_idx} (non-finite loss or weights)")
        else:
            check_target(ctx, row)
    ctx.version += 1
    return row
