"""The asynchronous server's SimPy process: bounded concurrency, arrivals, redispatch.

At most ``simulation.concurrency`` devices train at once (all, by default). A dispatched device
downloads the current model (its base version), computes, uploads; each finished upload is an
*arrival* handed to the strategy's ``on_arrival``, which may publish a new version. The device's
slot is then refilled with an idle online device (the same one when everyone trains), which
downloads the newest model. Staleness = current version - base version, logged per arrival.

Channel and bandwidth: each job's durations come from the same cost model as synchronous
rounds (:mod:`simulator.engine.costs`: the strategy's protocol legs, cycle shares and bits), with
the channel at its dispatch time and fixed equal slots of the uplink and downlink bands (band /
concurrency, the server's power split the same way); with
``simulation.uplink_sharing: reshare`` the uplink band is instead re-shared among the transfers
in flight whenever one starts or ends (:mod:`simulator.engine.shared_uplink`).

A job runs as a chain of SimPy events (:mod:`simulator.engine.async_job`), its legs read off a
per-block plan of the whole population once dispatching is dense
(:mod:`simulator.engine.dispatch_plans`); ``simulation.device_jobs: processes`` runs each as a
SimPy process planned on its own, the reference the two are tested against.

Training (zero virtual time) happens at arrival, from the job's starting model; arrivals at the
same instant from the same starting model are trained together in one batched call. The
strategy says which model a device starts from (``dispatch_state``): the global model, or, for
OrthoFL, the device's own calibrated one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import simpy

from fl.state import ClientUpdate, ModelState
from simulator.engine.async_job import CallbackJob
from simulator.engine.dispatch_plans import DispatchPlans
from simulator.engine.learning import evaluation_nan
from simulator.engine.processes import (
    STOPPING,
    Job,
    RunContext,
    client_job,
    energy_j,
    evaluate_version,
    nobody_ever_again,
)
from simulator.engine.recorder import SERVER
from simulator.engine.shared_uplink import SharedUplink
from simulator.engine.stage_outcomes import JobOutcome


@dataclass(frozen=True)
class AsyncJob:
    """A dispatched job: its phases (``phases.round_idx`` is the base version), the device's
    job counter (its training stream key) and the model it starts from."""

    phases: Job
    job_idx: int
    base_state: ModelState

    @property
    def device_id(self) -> int:
        return self.phases.device_id

    @property
    def base_version(self) -> int:
        return self.phases.round_idx

    @property
    def uplink_bits(self) -> int:
        """Bits this job sends to the server once delivered."""
        table = self.phases.table
        return int(table.kind_sum(table.bits, self.phases.slot, "uplink"))

    @property
    def downlink_s(self) -> float:
        table = self.phases.table
        return table.kind_sum(table.duration_s, self.phases.slot, "downlink")


@dataclass
class Arrival:
    """A finished (or interrupted) job; ``update`` is filled in when it is trained."""

    job: AsyncJob
    delivered: bool
    reason: str = ""
    compute_spent_s: float = 0.0
    uplink_spent_s: float = 0.0
    update: ClientUpdate | None = None


@dataclass
class Pending:
    """What accumulated since the last published version (reported with the next one)."""

    bits_up: int = 0
    bits_down: int = 0
    energy_compute_j: float = 0.0
    energy_tx_j: float = 0.0
    arrivals: int = 0
    staleness: list[int] = field(default_factory=list)  # as the strategy weights it
    dispatch_staleness: list[int] = field(default_factory=list)  # versions since dispatch


def async_client_job(env: simpy.Environment, ctx: RunContext, job: AsyncJob, arrivals):
    """The synchronous job's phases (shared code), then post the outcome as an arrival."""
    outcome = yield from client_job(env, ctx, job.phases)
    post_arrival(arrivals, job, outcome)


def post_arrival(arrivals: simpy.Store, job: AsyncJob, outcome: JobOutcome) -> None:
    """Hand a finished (or stopped) job to the server as an :class:`Arrival`."""
    kinds = [step.kind for step in job.phases.table.steps]
    spent = outcome.spent_s
    arrivals.put(
        Arrival(
            job,
            outcome.delivered,
            outcome.reason,
            sum(t for t, k in zip(spent, kinds, strict=True) if k == "compute"),
            sum(t for t, k in zip(spent, kinds, strict=True) if k == "uplink"),
        )
    )


def async_server(env: simpy.Environment, ctx: RunContext):
    """Dispatch, collect arrivals, let the strategy publish, redispatch; until the limits."""
    world, sim, rec = ctx.world, ctx.world.scenario.simulation, ctx.recorder
    n = world.num_devices
    slots = min(sim.concurrency or n, n)
    arrivals = simpy.Store(env)
    jobs_done = np.zeros(n, dtype=np.int64)  # per-device job counter (training stream key)
    # devices not dispatched, or handled by the server since: with every device training at
    # once a dispatch refills a few slots, which scanning 10^4 busy flags would dominate
    idle = set(range(n))
    costs = ctx.costs
    dispatches = 0
    pending = Pending()
    last_publish_s = 0.0
    as_processes = sim.device_jobs == "processes"
    plans = DispatchPlans(ctx, slots)

    def post(job: AsyncJob, outcome: JobOutcome) -> None:
        post_arrival(arrivals, job, outcome)

    def idle_online() -> np.ndarray:
        """Sorted ids of the idle devices that are online."""
        ids = np.fromiter(idle, dtype=np.int64, count=len(idle))
        ids.sort()
        return ids[ctx.online[ids]]

    def start_state(dev: int):
        if world.scenario.systems_only:
            return world.global_state
        return world.strategy.dispatch_state(device_id=dev, global_state=world.global_state)

    def dispatch() -> None:
        nonlocal dispatches
        free = slots - (n - len(idle))
        if free <= 0:
            return
        candidates = idle_online()
        if candidates.size == 0:
            return
        if candidates.size > free:
            rng = world.streams.numpy("dispatch", dispatches)
            candidates = np.sort(rng.choice(candidates, size=free, replace=False))
        idle.difference_update(candidates.tolist())
        dispatches += 1
        protocol = world.strategy.round_protocol(global_state=world.global_state, cohort=candidates)
        phases, bits_down = plans.jobs(protocol, candidates, env.now, jobs_done[candidates])
        for i, dev in enumerate(candidates.tolist()):
            job = AsyncJob(phases[i], int(jobs_done[dev]), start_state(dev))
            jobs_done[dev] += 1
            pending.bits_down += bits_down[i]
            if as_processes:
                ctx.running[dev] = env.process(async_client_job(env, ctx, job, arrivals))
            else:
                ctx.running[dev] = running = CallbackJob(env, ctx, job, post)
                running.start()

    if sim.uplink_sharing == "reshare":
        ctx.shared_uplink = SharedUplink(env, costs.ul_band_hz)
    dispatch()
    while ctx.version < sim.rounds:
        if sim.max_time_s is not None and env.now >= sim.max_time_s:
            ctx.status = "time_limit"
            return
        if len(idle) == n:  # nobody dispatched
            rec.event(env.now, "no_device_online", SERVER)
            if nobody_ever_again(ctx, env.now):
                return
            yield env.timeout(sim.idle_retry_s)
            dispatch()
            continue
        get = arrivals.get()
        if sim.max_time_s is None:
            first = yield get
        else:  # stop at the limit itself, not at the first arrival after it
            yield get | env.timeout(max(sim.max_time_s - env.now, 0.0))
            if not get.triggered:
                get.cancel()
                ctx.status = "time_limit"
                return
            first = get.value
        yield env.timeout(0)  # let every arrival of this instant land first
        batch = [first, *arrivals.items]
        arrivals.items.clear()
        batch.sort(key=lambda a: a.job.device_id)
        idle.update(a.job.device_id for a in batch)
        _learn(ctx, batch)
        compute_j, tx_j = energy_j(
            world,
            [a.job.device_id for a in batch],
            [a.compute_spent_s for a in batch],
            [a.uplink_spent_s for a in batch],
        )
        pending.energy_compute_j += compute_j
        pending.energy_tx_j += tx_j
        for a in batch:
            if not a.delivered or ctx.status in STOPPING:
                continue
            # the staleness the strategy weights the arrival by (OrthoFL: since the device's
            # last sync), and the versions since this job's dispatch, logged apart
            staleness = world.strategy.staleness_of(version=ctx.version, update=a.update)
            since_dispatch = ctx.version - a.job.base_version
            rec.event(
                env.now,
                "arrival",
                a.job.device_id,
                a.job.base_version,
                float(staleness),
                detail=f"staleness {staleness}, dispatched {since_dispatch} versions ago",
            )
            pending.arrivals += 1
            pending.staleness.append(staleness)
            pending.dispatch_staleness.append(since_dispatch)
            ctx.staleness.append(staleness)
            pending.bits_up += a.job.uplink_bits
            new = world.strategy.on_arrival(
                global_state=world.global_state, version=ctx.version, update=a.update, now_s=env.now
            )
            if new is None:
                continue
            world.global_state = new
            row = _publish_async(ctx, pending, env.now - last_publish_s, env.now, a)
            pending, last_publish_s = Pending(), env.now
            rec.event(env.now, "publish", SERVER, ctx.version - 1, detail=f"version {ctx.version}")
            rec.metric_row(row)
            if ctx.on_version is not None:
                ctx.on_version(row)
            if ctx.status in STOPPING or ctx.version >= sim.rounds:
                break
        if ctx.status in STOPPING:
            return
        dispatch()
    ctx.status = "completed"


def _learn(ctx: RunContext, batch: list[Arrival]) -> None:
    """Train every delivered arrival from its own base model (zero virtual time); arrivals
    sharing a base version train together. Attaches ``update`` to each arrival."""
    world = ctx.world
    if world.scenario.systems_only:
        for a in batch:
            base = a.job.base_state
            a.update = ClientUpdate(a.job.device_id, a.job.base_version, base, 1, start_state=base)
        return
    assert world.data is not None, "training needs data; systems-only runs return above"
    # same starting model (the same global version, unless the strategy gives each device
    # its own, as OrthoFL does) -> one batched call
    groups: dict[tuple[int, int], list[Arrival]] = {}
    for a in batch:
        if a.delivered:
            groups.setdefault((a.job.base_version, id(a.job.base_state)), []).append(a)
    for group in groups.values():
        base = group[0].job.base_state
        ids = [a.job.device_id for a in group]
        updates = world.strategy.local_updates(
            model=world.model,
            data=world.data,
            global_state=base,
            device_ids=ids,
            rho=np.zeros(len(ids)),
            base_version=group[0].job.base_version,
            round_idx=0,
            work=world.work,
            rngs=[world.streams.numpy("train", a.job.device_id, a.job.job_idx) for a in group],
        )
        for a, u in zip(group, updates, strict=True):
            a.update = replace(u, start_state=base)


def _publish_async(ctx: RunContext, pending: Pending, latency_s: float, now_s: float, a: Arrival):
    world = ctx.world
    ctx.version += 1
    row: dict = {
        "version": ctx.version,
        "round": ctx.version - 1,
        "time_s": now_s,
        "round_start_s": now_s - latency_s,
        "round_latency_s": latency_s,
        "accuracy": math.nan,
        "loss": math.nan,
        "train_loss": math.nan,
        **evaluation_nan(ctx.world),
        "downlink_s": a.job.downlink_s,
        "compute_s": a.compute_spent_s,
        "uplink_s": a.uplink_spent_s,
        "wait_s": 0.0,
        "mean_device_idle_s": math.nan,
        "n_selected": pending.arrivals,
        "n_delivered": pending.arrivals,
        "n_failed": 0,
        "bits_down": pending.bits_down,
        "bits_up": pending.bits_up,
        "energy_compute_j": pending.energy_compute_j,
        "energy_tx_j": pending.energy_tx_j,
        "allocation_status": "equal_slots",
        "predicted_latency_s": math.nan,
        "mean_rho": 0.0,
        "t_max_s": math.nan,
        "kkt_residual": math.nan,
        # integer sums are exact, so these equal numpy's means to the bit
        "mean_staleness": sum(pending.staleness) / len(pending.staleness),
        "max_staleness": max(pending.staleness),
        "mean_dispatch_staleness": sum(pending.dispatch_staleness)
        / len(pending.dispatch_staleness),
        "d2d_s": 0.0,
        "bits_d2d": 0,
        "mean_distance_m": ctx.mean_distance_m(),
        **world.strategy.round_metrics(),
    }
    if not world.scenario.systems_only:
        evaluate_version(ctx, row, ctx.version, [], f"at version {ctx.version}")
    return row
