"""SimPy processes: the synchronous server, one job per selected device, and availability.

Time lives here and only here. A round runs the strategy's protocol (fl/protocol.py): stages of
legs, each leg a timeout, a barrier after each stage; a job interrupted at any leg by the round
deadline or by its device going offline becomes a ``Failure`` with that reason and takes no part
in later legs. Processes are started in
sorted device order and nothing iterates a set, so a seed fixes the whole event log.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np
import simpy

from channels.aircomp import AirCompRound
from channels.config import OverTheAirConfig
from channels.units import dbm_to_w
from devices.timing import compute_energy_j
from fl.aircomp import over_the_air
from fl.protocol import LEG_KINDS, Leg, relayed_over_backhaul
from fl.state import Failure
from simulator.engine import coalition_events
from simulator.engine.async_job import CallbackJob
from simulator.engine.bulk_stage import bulk_possible, bulk_stage
from simulator.engine.costs import ALLOCATION_OK, LegCosts, StagePlan, plan_stage
from simulator.engine.device_stats import DeviceStats
from simulator.engine.learning import (
    evaluate_global,
    evaluation_nan,
    is_diverged,
    personal_accuracy,
    train_and_aggregate,
)
from simulator.engine.recorder import SERVER, Recorder
from simulator.engine.selection_ledger import SelectionLedger
from simulator.engine.shared_uplink import SharedUplink
from simulator.engine.stage_outcomes import JobOutcome, StageOutcomes
from simulator.engine.world import World


@dataclass
class RunContext:
    """Mutable run state shared by the processes."""

    world: World
    recorder: Recorder
    online: np.ndarray  # [n_devices] bool
    # device -> its job in flight (a process, or an asynchronous job's chained events)
    running: dict[int, simpy.Process | CallbackJob] = field(default_factory=dict)
    version: int = 0
    status: str = "running"
    allocation_wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    on_version: Callable[[dict], None] | None = None
    shared_uplink: SharedUplink | None = None  # set by the async server when re-sharing
    staleness: list[int] = field(default_factory=list)  # per applied async arrival
    end_s: float = 0.0  # virtual time when the run stopped
    # the untrained model's test loss (at least ln(classes)): divergence is relative to it
    reference_loss: float = math.nan
    offline_for_good: int = 0  # devices whose availability says they never come online again
    reform_due: bool = False  # a re-forming clock (every_s) passed a multiple since the last
    reforms: int = 0  # re-formings done
    leg_steps: dict = field(default_factory=dict)  # LegStep per (leg name, kind), see StageTable
    device_stats: DeviceStats = field(init=False)
    costs: LegCosts = field(init=False)  # one per run: both servers and mobility share it
    ledger: SelectionLedger = field(init=False)  # what the server knows of past rounds
    handovers_since_row: int = 0  # multi-cell: serving-cell changes since the last metrics row
    previous_cell: np.ndarray = field(init=False)  # multi-cell: serving cells before a move
    aircomp: AirCompRound | None = None  # this round's over-the-air uplink, if any
    deadline_s: float = math.inf  # the current round's deadline, absolute virtual time
    deadline_event: simpy.Timeout | None = None  # ... as the SimPy timeout the server waits on
    next_offline_s: np.ndarray = field(init=False)  # [n] when an online device goes offline
    availability_event: dict = field(default_factory=dict)  # device -> its pending change
    aircomp_mse: tuple[float, float] = (math.nan, math.nan)  # (measured, formula) this round
    _distance_of: tuple = (None, math.nan)  # (population, its mean distance m), see below

    def __post_init__(self) -> None:
        self.device_stats = DeviceStats(len(self.online))
        self.costs = LegCosts(self.world)
        self.ledger = SelectionLedger(len(self.online))
        self.previous_cell = self.costs.cell_of.copy()
        self.next_offline_s = np.full(len(self.online), math.inf)
        for d in np.flatnonzero(~self.online).tolist():  # offline from the start
            self.device_stats.went_offline(d, 0.0)

    def mean_distance_m(self) -> float:
        """Mean device-server distance, m, of the current positions (the population object is
        replaced when devices move, so a cached value is valid while it is the same one)."""
        population = self.world.population
        if self._distance_of[0] is not population:
            self._distance_of = (population, float(population.distance_m.mean()))
        return self._distance_of[1]


# Statuses that end a run before its version or time limit.
STOPPING = ("diverged", "target_reached")


def nobody_ever_again(ctx: RunContext, now_s: float) -> bool:
    """True (and the run's status says so) when no device is online and none ever will be:
    waiting would never end."""
    if ctx.online.any() or ctx.offline_for_good < len(ctx.online):
        return False
    ctx.status = "no_devices_online"
    ctx.notes.insert(0, f"no device is online at {now_s:g} s and none ever comes online again")
    return True


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


@dataclass(frozen=True, slots=True)
class LegStep:
    """How a job runs one leg, shared by every job of a stage: names, the event that starts
    it, whether the event shows a band, the per-device bits counter it adds to."""

    name: str
    kind: str
    start_event: str
    shows_band: bool
    bits_counter: np.ndarray | None

    @classmethod
    def of(cls, leg: Leg, stats: DeviceStats) -> LegStep:
        counter = {"downlink": stats.bits_down, "uplink": stats.bits_up, "d2d": stats.bits_d2d}
        return cls(
            leg.name,
            leg.kind,
            f"{leg.kind}_start",
            leg.kind in ("uplink", "d2d"),
            counter.get(leg.kind),
        )


@dataclass(frozen=True, slots=True)
class StageTable:
    """A stage plan in the form jobs read it, shared by every job of the stage: per leg, a
    list over the stage's devices (duration s, taking part, bits, band Hz). One table per
    stage, not lists per job: 10^4 jobs a round would otherwise keep the garbage collector
    busy."""

    steps: tuple[LegStep, ...]
    duration_s: list[list[float]]
    active: list[list[bool]]
    bits: list[list[float]]
    bandwidth_hz: list[list[float]]

    @classmethod
    def of(cls, plan: StagePlan, stats: DeviceStats, steps: dict) -> StageTable:
        """``steps`` caches each leg's :class:`LegStep` by (name, kind) for the run, and the
        last stage's tuple of them (the asynchronous engine plans a stage for every dispatch,
        usually from the same legs)."""
        last = steps.get("last stage")
        if last is None or last[0] is not plan.legs:
            for leg in plan.legs:
                if (leg.name, leg.kind) not in steps:
                    steps[leg.name, leg.kind] = LegStep.of(leg, stats)
            last = steps["last stage"] = (
                plan.legs,
                tuple(steps[leg.name, leg.kind] for leg in plan.legs),
            )
        return cls(
            last[1],
            plan.duration_s.tolist(),
            plan.active.tolist(),
            _rows(plan.bits),
            _rows(plan.bandwidth_hz),
        )

    def kind_sum(self, values: list[list[float]], slot: int, kind: str) -> float:
        """Sum of ``values`` over this device's legs of one kind (e.g. its uplink bits)."""
        return sum(v[slot] for v, step in zip(values, self.steps, strict=True) if step.kind == kind)


def _rows(values: np.ndarray) -> list[list[float]]:
    """``values.tolist()`` [legs][n], except that a long row holding one value (the bits or
    band of equal slots, nan for compute legs) repeats one float object: a table of a whole
    population (the asynchronous engine's per-block plans) then costs a pointer per entry
    there, not a float object too."""
    if values.shape[1] < 64:
        return values.tolist()
    rows = []
    for row in values:
        first = row[0]
        same = (row == first).all() if first == first else np.isnan(row).all()
        rows.append([first.item()] * row.size if same else row.tolist())
    return rows


@dataclass(slots=True)
class Job:
    """One device's part of one stage of a round: column ``slot`` of the stage's table.
    (Not frozen: a frozen dataclass costs microseconds per field at 10^4 jobs a round.)"""

    device_id: int
    round_idx: int
    table: StageTable
    slot: int
    done_event: str  # closes the device's stage: "upload_done" after an upload
    gamma_ul_hz: float = math.nan  # for a re-shared uplink (the duration is then unknown)
    ends_round: bool = True  # the device's last stage of the round: a delivered update


# The event that closes a device's stage, by the kind of its last leg (an upload that
# reaches the server is "upload_done", as it has always been).
DONE_EVENT = {
    "uplink": "upload_done",
    "downlink": "downlink_done",
    "compute": "compute_done",
    "d2d": "d2d_done",
    "backhaul": "backhaul_done",
}


def client_job(env: simpy.Environment, ctx: RunContext, job: Job):
    """The device's legs one after the other; an Interrupt stops it where it is."""
    rec, stats, shared = ctx.recorder, ctx.device_stats, ctx.shared_uplink
    event, timeout = rec.event, env.timeout
    dev, rnd, table, i = job.device_id, job.round_idx, job.table, job.slot
    spent = [0.0] * len(table.steps)
    j = 0
    leg_start = env.now
    try:
        for j, step in enumerate(table.steps):
            if not table.active[j][i]:
                continue
            leg_start = env.now
            if shared is not None and step.kind == "uplink":
                # duration unknown: the share changes as other transfers start and end
                event(leg_start, "uplink_start", dev, rnd, math.nan, math.nan, "", step.name)
                yield from shared.send(dev, table.bits[j][i], job.gamma_ul_hz)
                spent[j] = env.now - leg_start
            else:
                d = table.duration_s[j][i]
                band = table.bandwidth_hz[j][i] if step.shows_band else math.nan
                event(leg_start, step.start_event, dev, rnd, d, band, "", step.name)
                yield timeout(d)
                # an upload's time is read off the clock, as for the re-shared uplink
                spent[j] = env.now - leg_start if step.kind == "uplink" else d
            if step.bits_counter is not None:
                step.bits_counter[dev] += int(table.bits[j][i])
        event(env.now, job.done_event, dev, rnd)
        if job.ends_round:
            stats.updates[dev] += 1
        return JobOutcome(dev, len(spent), "", env.now, spent)
    except simpy.Interrupt as stop:
        spent[j] = env.now - leg_start
        reason = str(stop.cause)
        event(env.now, "failure", dev, rnd, math.nan, math.nan, reason, table.steps[j].name)
        stats.failures[dev] += 1
        stats.jobs[dev] += not job.ends_round  # counted once per round, below otherwise
        return JobOutcome(dev, j, reason, env.now, spent)
    finally:
        ctx.running.pop(dev, None)
        stats.jobs[dev] += job.ends_round
        stats.busy_s[dev] += sum(spent)


def device_mobility(env: simpy.Environment, ctx: RunContext, model, step_s: float):
    """Move every device at each multiple of ``step_s`` (the coherence block boundaries), so
    that a block sees one set of positions; path loss follows. One ``positions`` event each."""
    world = ctx.world
    while True:
        last_s = env.now
        yield env.timeout((math.floor(env.now / step_s + 1e-9) + 1) * step_s - env.now)
        moved = model.advance(world.population.position_m.copy(), env.now - last_s)
        world.population = replace(world.population, position_m=moved)
        handed = ctx.costs.refresh_positions()
        if handed.size:
            handovers(env, ctx, handed)
        ctx.recorder.event(
            env.now, "positions", SERVER, duration_s=ctx.mean_distance_m(), detail="mean distance"
        )


def handovers(env: simpy.Environment, ctx: RunContext, devices: np.ndarray) -> None:
    """Devices whose serving cell just changed: one ``handover`` event each (detail ``old ->
    new``); with ``cells.handover: fail`` a device in the middle of a round's job fails it
    (reason ``handover``), with ``finish_old`` it finishes with its old cell."""
    cells = ctx.costs.cells
    assert cells is not None
    new = ctx.costs.cell_of
    for dev in devices.tolist():
        old = ctx.previous_cell[dev]
        ctx.recorder.event(env.now, "handover", dev, detail=f"{old} -> {new[dev]}")
        proc = ctx.running.get(dev)
        if cells.handover == "fail" and proc is not None and proc.is_alive:
            proc.interrupt("handover")
    ctx.previous_cell = new.copy()
    ctx.handovers_since_row += int(devices.size)


def device_availability(env: simpy.Environment, ctx: RunContext, device_id: int, rng):
    """Flip a device online/offline; going offline interrupts its running job."""
    availability = ctx.world.availability
    while True:
        online = bool(ctx.online[device_id])
        wait_s = availability.next_change_s(rng, device_id=device_id, online=online, now_s=env.now)
        if not math.isfinite(wait_s):
            if not online:
                ctx.offline_for_good += 1
            return
        change = env.timeout(wait_s)
        # known ahead, so a stage run as arrays can stop the device exactly then
        ctx.next_offline_s[device_id] = env.now + wait_s if online else math.inf
        ctx.availability_event[device_id] = change
        yield change
        ctx.next_offline_s[device_id] = math.inf
        ctx.online[device_id] = not online
        ctx.recorder.event(env.now, "offline" if online else "online", device_id)
        if online:
            ctx.device_stats.went_offline(device_id, env.now)
        else:
            ctx.device_stats.came_online(device_id, env.now)
        job = ctx.running.get(device_id)
        if online and job is not None and job.is_alive:
            job.interrupt("offline")


def critical_spent(done: StageOutcomes) -> np.ndarray | None:
    """Per-leg time [n_legs] of the last device to deliver in a stage (None if nobody did).

    Ties go to the highest device id, as in the event order. Min-max allocation makes every
    device finish together, so finish times within float rounding (1e-9 relative) are ties:
    otherwise the choice would follow the last ulp of a solver.
    """
    delivered = np.flatnonzero(done.delivered)
    if delivered.size == 0:
        return None
    finished = done.finished_at_s[delivered]
    tied = finished >= finished.max() * (1.0 - 1e-9)
    return done.spent_s[delivered[tied][np.argmax(done.device_id[delivered][tied])]]


@dataclass
class RoundAccount:
    """What a round's stages add up to: the critical path per leg, the time each device spent,
    bits per direction and energy."""

    leg_names: list[str] = field(default_factory=list)
    leg_kinds: list[str] = field(default_factory=list)
    critical_s: list[float] = field(default_factory=list)  # per leg, on the critical path
    num_devices: int = 0
    busy_s: np.ndarray = field(init=False)  # [n_devices] time each device spent, all stages
    bits: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEG_KINDS, 0.0))
    energy_compute_j: float = 0.0
    energy_tx_j: float = 0.0

    def __post_init__(self) -> None:
        self.busy_s = np.zeros(self.num_devices)

    def add_stage(self, world: World, legs, done: StageOutcomes) -> None:
        kinds = np.array([leg.kind for leg in legs])
        crit = critical_spent(done)
        self.leg_names += [leg.name for leg in legs]
        self.leg_kinds += kinds.tolist()
        self.critical_s += [0.0] * len(legs) if crit is None else crit.tolist()
        self.busy_s[done.device_id] += done.spent_s.sum(axis=1)  # ids are unique in a stage
        compute_j, tx_j = energy_j(
            world,
            done.device_id,
            done.spent_s[:, kinds == "compute"].sum(axis=1),
            done.spent_s[:, (kinds == "uplink") | (kinds == "d2d")].sum(axis=1),
        )
        self.energy_compute_j += compute_j
        self.energy_tx_j += tx_j

    def breakdown(self, latency_s: float, delivered: list[int]) -> dict:
        """Critical-path split of the round latency: per leg kind (and per leg when the
        protocol has more than three), plus ``wait_s``, the part no delivered work explains (a
        deadline that cut the round, or every device failing); ``mean_device_idle_s`` is how
        long delivering devices sat idle waiting for the round to close."""
        crit = np.array(self.critical_s)
        kinds = np.array(self.leg_kinds)
        row = {f"{k}_s": float(crit[kinds == k].sum()) for k in ("downlink", "compute", "uplink")}
        row["wait_s"] = max(latency_s - float(crit.sum()), 0.0) if crit.size else latency_s
        row["mean_device_idle_s"] = (
            float(np.mean(latency_s - self.busy_s[np.asarray(delivered, dtype=np.int64)]))
            if delivered
            else math.nan
        )
        row["d2d_s"] = float(crit[kinds == "d2d"].sum())
        if len(self.leg_names) > 3:
            row.update(
                {
                    f"leg_{n}_s": float(c)
                    for n, c in zip(self.leg_names, crit.tolist(), strict=False)
                }
            )
        return row


def energy_j(world: World, device_ids, compute_spent_s, uplink_spent_s) -> tuple[float, float]:
    """(compute J, transmit J) for the time devices actually spent computing and sending,
    interrupted jobs included; arrays [n] (both engines use it)."""
    pop = world.population
    ids = np.asarray(device_ids, dtype=np.int64)
    f = pop.cpu_hz[ids]
    compute = compute_energy_j(pop.kappa[ids], f * np.asarray(compute_spent_s), f).sum()
    transmit = dbm_to_w(pop.tx_power_dbm[ids]) * np.asarray(uplink_spent_s)
    return float(compute), float(transmit.sum())


def stage_jobs(
    plan: StagePlan,
    round_idx: int,
    last_active_stage: np.ndarray | None,
    stage_idx: int,
    ctx: RunContext,
) -> list[Job]:
    """The stage plan as one :class:`Job` per device, sharing one :class:`StageTable`
    (``last_active_stage`` [n] None: every device's round ends with this stage)."""
    table = StageTable.of(plan, ctx.device_stats, ctx.leg_steps)
    gamma = plan.gamma_ul_hz.tolist()
    ends = (
        [True] * plan.device_ids.size
        if last_active_stage is None
        else (last_active_stage == stage_idx).tolist()
    )
    # each device's last leg names the event that closes its stage
    done_of = [DONE_EVENT[leg.kind] for leg in plan.legs]
    if plan.active[-1].all():
        done = [done_of[-1]] * plan.device_ids.size
    else:
        last = len(plan.legs) - 1 - np.argmax(plan.active[::-1], axis=0)
        done = [done_of[j] for j in last.tolist()]
    return [
        Job(dev, round_idx, table, i, done[i], gamma[i], ends[i])
        for i, dev in enumerate(plan.device_ids.tolist())
    ]


def sync_server(env: simpy.Environment, ctx: RunContext):
    """Synchronous rounds until ``simulation.rounds`` versions are published (or a limit).

    A round runs its protocol's stages in turn; each stage is planned at its start (channel
    block, one allocation per uplink leg) and closed by a barrier that waits for every
    participant, or for the round's deadline, which interrupts whoever is still working.
    """
    world = ctx.world
    sim = world.scenario.simulation
    rec = ctx.recorder
    costs = ctx.costs
    all_ids = np.arange(world.num_devices)
    round_idx = 0
    rec.canonical = bulk_possible(ctx)  # stages as arrays record ahead: sort the log at the end
    groups = world.strategy.reform_clock()  # strategies whose devices form coalitions
    if groups is not None and groups[1] is not None:
        env.process(coalition_events.reform_clock(env, ctx, groups[1]))
    while ctx.version < sim.rounds:
        if sim.max_time_s is not None and env.now >= sim.max_time_s:
            ctx.status = "time_limit"
            return
        reform = groups is not None and coalition_events.is_reform_round(ctx, round_idx)
        world.strategy.begin_round(round_idx=round_idx, reform=reform)
        # 1. select among online devices
        available = all_ids[ctx.online].tolist()
        cohort = select_cohort(env, ctx, round_idx, available) if available else []
        if cohort is None:  # the selection policy chose nobody among online devices
            return
        if not cohort:
            rec.event(env.now, "no_device_online", SERVER, round_idx)
            if nobody_ever_again(ctx, env.now):
                return
            yield env.timeout(sim.idle_retry_s)
            continue
        round_start_s = env.now
        if reform:
            ctx.reform_due = False
        members = np.asarray(cohort, dtype=np.int64)
        bulk = bulk_possible(ctx)
        cells = ctx.costs.cells
        if cells is not None:  # the serving cells at the round's start
            cell_at_start = ctx.costs.cell_of.copy()
            world.strategy.assign_cells(cell_at_start)
        protocol = world.strategy.round_protocol(global_state=world.global_state, cohort=members)
        if cells is not None and not world.strategy.edge_aggregation:
            protocol = relayed_over_backhaul(protocol, members.size)
        last_active_stage = _last_active_stage(protocol, members.size)
        alive = np.ones(members.size, dtype=bool)
        failures: list[Failure] = []
        account = RoundAccount(num_devices=world.num_devices)
        deadline = None
        first: StagePlan | None = None
        predicted = 0.0
        for stage_idx in range(len(protocol.stages)):
            if stage_idx > 0:
                rec.event(
                    env.now, "barrier", SERVER, round_idx, detail=protocol.barriers[stage_idx - 1]
                )
                if deadline is not None and deadline.processed:  # no time left for this stage
                    for dev in members[alive].tolist():
                        rec.event(env.now, "failure", dev, round_idx, detail="deadline")
                        failures.append(Failure(dev, "deadline", env.now))
                    alive[:] = False
                    break
            # senders whose d2d receiver is gone cannot deliver (before sending, or after)
            failures += _receiver_lost(env, ctx, protocol, stage_idx, members, alive, round_idx)
            # 2. channels and bandwidth for the stage's devices at once
            plan = plan_stage(
                world, costs, protocol, stage_idx, members, alive, env.now, job_idx=round_idx
            )
            status = plan.allocation_status
            predicted += plan.predicted_latency_s
            if first is None:
                first = plan
                rec.event(
                    env.now,
                    "round_start",
                    SERVER,
                    round_idx,
                    plan.predicted_latency_s,
                    detail=status,
                )
            ctx.allocation_wall_s += plan.solve_time_s  # wall clock: summary only, never metrics
            if plan.aircomp is not None:  # the round's over-the-air sum: applied at aggregation
                ctx.aircomp = plan.aircomp
            if status not in ALLOCATION_OK:
                ctx.notes.append(f"round {round_idx}: allocation {status}")
            # 3. one job per device; devices no bandwidth can serve fail at once
            reachable = np.isfinite(plan.total_s)
            taking_part = plan.active.any(axis=0)
            slot = np.flatnonzero(alive)
            for i in np.flatnonzero(~reachable).tolist():
                dev = int(plan.device_ids[i])
                reason = plan.drop_reason if plan.dropped[i] else "unreachable"
                rec.event(env.now, "failure", dev, round_idx, detail=reason)
                failures.append(Failure(dev, reason, env.now))
                alive[slot[i]] = False
            running = np.flatnonzero(reachable & taking_part)
            if bulk:  # the whole stage as arrays (simulator/engine/bulk_stage.py)
                if sim.deadline_s is not None and deadline is None:
                    deadline = env.timeout(sim.deadline_s)
                    ctx.deadline_s = round_start_s + sim.deadline_s
                ends = last_active_stage[slot][running] == stage_idx
                closing = _done_events(plan)[running]
                done, reasons = yield from bulk_stage(
                    env, ctx, plan, running, round_idx, ends, deadline, closing
                )
                failures += [
                    Failure(int(d), r, float(t))
                    for d, r, t in zip(done.device_id[~done.delivered].tolist(), reasons,
                                       done.finished_at_s[~done.delivered].tolist(), strict=True)
                ]  # fmt: skip
            else:
                done = yield from _stage_processes(
                    env, ctx, plan, running, round_idx, last_active_stage[slot], stage_idx,
                    deadline_s=sim.deadline_s, deadline=deadline, failures=failures,
                )  # fmt: skip
                if sim.deadline_s is not None and deadline is None:
                    deadline = ctx.deadline_event
            alive[np.searchsorted(members, done.device_id[~done.delivered])] = False
            account.add_stage(world, plan.legs, done)
            _count_bits(account, plan, done)
        assert first is not None
        failures += _receiver_lost(env, ctx, protocol, len(protocol.stages), members, alive,
                                   round_idx)  # fmt: skip
        delivered = members[alive].tolist()
        latency_s = env.now - round_start_s
        ctx.ledger.delivered(world, delivered, round_idx, account.busy_s)
        # 5. learn (zero virtual time), publish, evaluate
        # the pruning ratio each delivering device used (first stage's plan, ids sorted)
        rho_delivered = first.rho[np.searchsorted(first.device_ids, delivered)]
        before = world.strategy.membership.copy() if groups is not None else None
        row = _publish(ctx, round_idx, delivered, rho_delivered, failures, reform)
        reachable0 = np.isfinite(first.total_s)
        breakdown = account.breakdown(latency_s, delivered)
        row.update(
            round=round_idx,
            time_s=env.now,
            round_start_s=round_start_s,
            round_latency_s=latency_s,
            **{k: breakdown.pop(k) for k in ("downlink_s", "compute_s", "uplink_s", "wait_s")},
            mean_device_idle_s=breakdown.pop("mean_device_idle_s"),
            n_selected=len(cohort),
            n_delivered=len(delivered),
            n_failed=len(failures),
            bits_down=int(account.bits["downlink"]),
            bits_up=int(account.bits["uplink"]),
            energy_compute_j=account.energy_compute_j,
            energy_tx_j=account.energy_tx_j,
            allocation_status=first.allocation_status,
            predicted_latency_s=predicted,
            mean_rho=float(first.rho[reachable0].mean()) if reachable0.any() else math.nan,
            t_max_s=first.t_max_s,
            kkt_residual=max(first.certificate.values()) if first.certificate else math.nan,
            bits_d2d=int(account.bits["d2d"]),
            mean_distance_m=ctx.mean_distance_m(),
            jain_fairness=ctx.ledger.jain_fairness(),
            **breakdown,
            **world.strategy.round_metrics(),
        )
        if cells is not None:
            row.update(cell_columns(ctx, members, cell_at_start, first, account))
        if world.scenario.channel.aggregation.kind == "over_the_air":
            row.update(aircomp_columns(ctx, len(delivered)))
        if before is not None:
            coalition_events.after_round(ctx, round_idx, before, reform, row)
        rec.event(env.now, "publish", SERVER, round_idx, latency_s, detail=f"version {ctx.version}")
        rec.metric_row(row)
        if ctx.on_version is not None:
            ctx.on_version(row)
        if ctx.status in STOPPING:
            return
        round_idx += 1
    ctx.status = "completed"


def aircomp_columns(ctx: RunContext, delivered: int) -> dict:
    """Over-the-air rounds: the aggregate's per-entry MSE (measured on the normalised updates;
    nan without training), its formula for the devices that delivered, and how many devices
    the power control left out."""
    air = ctx.aircomp
    row = {
        "aircomp_mse": ctx.aircomp_mse[0],
        "aircomp_mse_formula": ctx.aircomp_mse[1],
        "aircomp_excluded": 0 if air is None else air.excluded,
    }
    if air is not None and math.isnan(row["aircomp_mse_formula"]):  # systems-only
        row["aircomp_mse_formula"] = air.mse(delivered)
    ctx.aircomp, ctx.aircomp_mse = None, (math.nan, math.nan)
    return row


def cell_columns(ctx: RunContext, members, cell_of, first: StagePlan, account) -> dict:
    """Multi-cell metrics of a round: cohort members per cell at its start (``cell<c>_load``),
    handovers since the last row, the uplink SINR (dB) of the first stage's uplink legs at
    the band each device got (p10 / p50 / p90), backhaul time on the critical path and bits."""
    cells = ctx.costs.cells
    assert cells is not None
    load = np.bincount(cell_of[members], minlength=cells.count)
    sinr = []
    for j, leg in enumerate(first.legs):
        if leg.kind == "uplink":
            on = first.active[j] & (first.bandwidth_hz[j] > 0)
            sinr.append(first.gamma_ul_hz[on] / first.bandwidth_hz[j][on])
    sinr_db = 10.0 * np.log10(np.concatenate(sinr)) if sinr else np.zeros(0)
    sinr_db = sinr_db[np.isfinite(sinr_db)]
    p10, p50, p90 = np.percentile(sinr_db, [10, 50, 90]) if sinr_db.size else [math.nan] * 3
    crit = np.array(account.critical_s)
    kinds = np.array(account.leg_kinds)
    row: dict[str, float] = {f"cell{c}_load": int(v) for c, v in enumerate(load.tolist())}
    row.update(
        handovers=ctx.handovers_since_row,
        sinr_db_p10=float(p10),
        sinr_db_p50=float(p50),
        sinr_db_p90=float(p90),
        backhaul_s=float(crit[kinds == "backhaul"].sum()) if crit.size else 0.0,
        bits_backhaul=int(account.bits["backhaul"]),
    )
    ctx.handovers_since_row = 0
    return row


def select_cohort(env, ctx: RunContext, round_idx: int, available: list[int]) -> list[int] | None:
    """The round's cohort among the ``available`` (online) devices: the strategy's own choice,
    or the scenario's selection policy from what the server knows (one ``selected`` event per
    device, its score in ``detail``). None, with status ``none_selected``, when the policy
    chose nobody although devices were online (e.g. an energy budget no device meets)."""
    world = ctx.world
    rng = world.streams.numpy("select", round_idx)
    if world.selection is None:
        cohort = world.strategy.select(round_idx=round_idx, available_ids=available, rng=rng)
        ctx.ledger.selected(cohort, round_idx)
        return cohort
    view = ctx.ledger.view(world, ctx.costs, round_idx, env.now, available)
    choice = world.selection.choose(view, rng)
    if not choice.device_ids:
        kind = world.selection.cfg.kind
        ctx.status = "none_selected"
        ctx.notes.insert(0, f"round {round_idx}: the {kind} selection chose no device among "
                         f"{len(available)} online at {env.now:g} s")  # fmt: skip
        return None
    for dev, score in zip(choice.device_ids, choice.scores, strict=True):
        detail = "" if math.isnan(score) else f"{score:.6g}"
        ctx.recorder.event(env.now, "selected", dev, round_idx, detail=detail)
    ctx.ledger.selected(choice.device_ids, round_idx)
    return choice.device_ids


def _stage_processes(env, ctx, plan, running, round_idx, last_active, stage_idx, *, deadline_s,
                     deadline, failures):  # fmt: skip
    """One SimPy process per device of the stage (``running``: plan columns); waits for all of
    them, or for the round's deadline (created here at the round's first stage, kept in
    ``ctx.deadline_event``) and then stops the stragglers. Returns the stage's outcomes."""
    jobs = stage_jobs(plan, round_idx, last_active, stage_idx, ctx)
    procs: list[simpy.Process] = []
    for i in running.tolist():
        proc = env.process(client_job(env, ctx, jobs[i]))
        ctx.running[jobs[i].device_id] = proc
        procs.append(proc)
    # the barrier: everyone, or the deadline and then stop the stragglers
    everyone = env.all_of(procs)
    if deadline_s is not None:
        if deadline is None:  # stage 0 starts the round
            deadline = ctx.deadline_event = env.timeout(deadline_s)
        yield everyone | deadline
        for proc in procs:
            if proc.is_alive:
                proc.interrupt("deadline")
        yield env.all_of(procs)
    else:
        yield everyone
    outcomes: list[JobOutcome] = [cast(JobOutcome, p.value) for p in procs]
    failures += [
        Failure(o.device_id, o.reason, o.finished_at_s) for o in outcomes if not o.delivered
    ]
    return StageOutcomes.of(outcomes, len(plan.legs))


def _done_events(plan: StagePlan) -> np.ndarray:
    """Each device's stage-closing event name [n] (after its last active leg), as jobs use."""
    names = np.array([DONE_EVENT[leg.kind] for leg in plan.legs], dtype=object)
    if plan.active[-1].all():
        return np.full(plan.device_ids.size, names[-1], dtype=object)
    last = len(plan.legs) - 1 - np.argmax(plan.active[::-1], axis=0)
    return names[last]


def _receiver_lost(env, ctx, protocol, upto_stage: int, members, alive, round_idx) -> list:
    """Fail the senders of d2d legs in stages <= ``upto_stage`` whose receiver is gone (not
    in the round, failed or offline): what they sent, or would send, never reaches the server.
    The reason is the leg's ``receiver_lost`` (e.g. ``head_failed``)."""
    lost: list[Failure] = []
    for stage in protocol.stages[: upto_stage + 1]:
        for leg in stage:
            if leg.kind != "d2d" or not alive.any():
                continue
            senders = alive.copy() if leg.participants is None else alive & leg.participants
            receivers = np.asarray(leg.receivers, dtype=np.int64)
            at = np.searchsorted(members, receivers).clip(0, members.size - 1)
            there = (members[at] == receivers) & alive[at]
            for i in np.flatnonzero(senders & ~there).tolist():
                dev = int(members[i])
                ctx.recorder.event(env.now, "failure", dev, round_idx, detail=leg.receiver_lost)
                lost.append(Failure(dev, leg.receiver_lost, env.now))
                alive[i] = False
    return lost


def _last_active_stage(protocol, m: int) -> np.ndarray:
    """Per cohort member [m], the last stage in which it has a leg (its round ends there)."""
    last = np.full(m, -1)
    for s, legs in enumerate(protocol.stages):
        for leg in legs:
            part = np.ones(m, bool) if leg.participants is None else np.asarray(leg.participants)
            last[part] = s
    return last


def _count_bits(account: RoundAccount, plan: StagePlan, done: StageOutcomes) -> None:
    """Bits of the legs each device completed (an interrupted transfer counts nothing)."""
    rows = np.searchsorted(plan.device_ids, done.device_id)
    for j, leg in enumerate(plan.legs):
        if leg.kind == "compute":
            continue
        completed = (done.legs_done > j) & plan.active[j, rows]
        account.bits[leg.kind] += float(plan.bits[j, rows][completed].sum())


def _over_the_air(ctx: RunContext, round_idx: int):
    """The updates as one over-the-air sum delivers them (fl/aircomp.py); records the MSE."""
    air = ctx.aircomp
    assert air is not None
    cfg = ctx.world.scenario.channel.aggregation
    assert isinstance(cfg, OverTheAirConfig)
    error = cfg.estimation_error if cfg.misalignment else None

    def transform(updates, global_state):
        done = over_the_air(
            updates, global_state, rho0_w=air.rho0_w, noise_w=air.noise_w,
            estimation_error=error, generator=ctx.world.streams.torch("aircomp", round_idx),
        )  # fmt: skip
        ctx.aircomp_mse = (done.mse, done.mse_formula)
        return done.updates

    return transform


def _publish(
    ctx: RunContext,
    round_idx: int,
    delivered: list[int],
    rho: np.ndarray,
    failures: list[Failure],
    reform: bool = False,
) -> dict:
    """Aggregate (full mode) and bump the version; returns the learning columns of the row.
    ``reform``: the strategy re-forms its groups first (from the updates; systems-only: from
    nothing)."""
    world = ctx.world
    row: dict = {
        "version": ctx.version + 1,
        "accuracy": math.nan,
        "loss": math.nan,
        "train_loss": math.nan,
        **evaluation_nan(world),
    }
    if not world.scenario.systems_only:
        step = train_and_aggregate(
            world,
            round_idx=round_idx,
            version=ctx.version,
            delivered=delivered,
            rho=rho,
            failures=failures,
            reform=reform,
            transform=None if ctx.aircomp is None else _over_the_air(ctx, round_idx),
        )
        world.global_state = step.new_state
        ctx.ledger.reports(step.reports)
        row["train_loss"] = step.train_loss
        computed = [step.train_loss] if delivered else []
        evaluate_version(ctx, row, ctx.version + 1, computed, f"in round {round_idx}")
    elif reform:
        world.strategy.reform(round_idx=round_idx, updates=[], num_devices=world.num_devices)
    ctx.version += 1
    return row


def evaluate_version(ctx: RunContext, row: dict, version: int, losses: list, where: str) -> None:
    """Both engines, for a just-published ``version``: evaluate every ``training.eval_every``
    versions and at the last (test accuracy and loss, personalised accuracy), then stop the
    run if the model diverged (a non-finite loss among ``losses`` and the test loss, or
    non-finite weights) or reached the target accuracy. Fills ``row`` in place."""
    world = ctx.world
    every = world.scenario.training.eval_every
    if version % every == 0 or version == world.scenario.simulation.rounds:
        if world.strategy.has_global_model:
            row.update(evaluate_global(world))
            losses = [*losses, row["loss"]]
        row.update(personal_accuracy(world))
    ratio = world.scenario.training.divergence_loss_ratio
    limit = ratio * ctx.reference_loss  # nan (no reference) compares false: never exploded
    exploded = [v for v in losses if math.isfinite(v) and v > limit]
    if is_diverged(world.global_state, *losses):
        ctx.status = "diverged"
        ctx.notes.append(f"model diverged {where} (non-finite loss or weights)")
    elif exploded:
        ctx.status = "diverged"
        ctx.notes.append(
            f"model diverged {where}: loss {max(exploded):.3g} is over {ratio:g} times the "
            f"untrained model's {ctx.reference_loss:.3g} (training.divergence_loss_ratio)"
        )
    else:
        check_target(ctx, row)
