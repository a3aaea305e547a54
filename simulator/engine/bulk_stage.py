"""One synchronous stage for a whole cohort as arrays, instead of one SimPy process per device.

Every device's legs run back to back from the stage's start, so their start and end times are
known the moment the stage is planned: ``t <- t + d`` leg by leg, the same float additions a
process's timeouts make. What can stop a device is known too:

* the round's deadline (an absolute time): a device still working then fails, in the leg it is
  in (a leg that starts exactly at the deadline counts as started);
* going offline: the availability process has already scheduled each online device's next
  change, so the engine reads it (a device that goes offline at or before its finish fails in
  the leg it is in, including exactly at a leg's end, as the earlier-scheduled availability
  event comes first).

The server still waits through SimPy: on the deadline itself, on the availability event of
the device that ends last, or on that device's own leg timeouts replayed one by one. Every
interruption therefore happens at its exact virtual time, and other processes (availability,
mobility) interleave as before. Events, device counters and outcomes are exactly those of the
per-device processes (``tests/simulator/test_bulk_stage.py`` compares the two paths' tables);
the recorder sorts the event table canonically, so append order does not show.

Used where it is exact: synchronous rounds with always-on or Markov availability, and no
device moving between cells (a handover could interrupt a job at a time not planned ahead).
``simulation.device_jobs: processes`` forces the per-device processes.
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from devices.availability import AlwaysOn, MarkovOnOff
from simulator.engine.costs import StagePlan
from simulator.engine.stage_outcomes import StageOutcomes

DEADLINE, OFFLINE = 1, 2


def bulk_possible(ctx) -> bool:
    """Whether a synchronous stage can run as arrays with the same result as processes."""
    world = ctx.world
    if world.scenario.simulation.device_jobs == "processes" or ctx.shared_uplink is not None:
        return False
    if not isinstance(world.availability, AlwaysOn | MarkovOnOff):
        return False
    moving = world.scenario.devices.mobility.kind != "constant"
    return not (ctx.costs.cells is not None and moving)


def bulk_stage(env: simpy.Environment, ctx, plan: StagePlan, slots, round_idx: int, ends_round,
               deadline, done_of):  # fmt: skip
    """Run the devices ``slots`` (indices into ``plan``'s columns) through the stage. Yields
    to SimPy until the stage is over; returns the jobs' outcomes as :class:`StageOutcomes`
    (device ids, delivered, legs done, finished at, spent [n, legs]) and the stopped devices'
    failure reasons. ``ends_round`` [n]:
    the stage is the device's last of the round; ``done_of`` [n]: its closing event name."""
    legs = plan.legs
    num_legs, n = len(legs), slots.size
    dev = plan.device_ids[slots]
    active = plan.active[:, slots]
    duration = plan.duration_s[:, slots]
    start = np.empty((num_legs, n))
    end = np.empty((num_legs, n))
    t = np.full(n, env.now)
    for j in range(num_legs):
        start[j] = t
        t = np.where(active[j], t + duration[j], t)
        end[j] = t
    finish = t
    # interruptions: the deadline (absolute) and each device's scheduled going-offline
    t_deadline = math.inf
    if deadline is not None and not deadline.processed:
        t_deadline = ctx.deadline_s
    t_off = ctx.next_offline_s[dev]
    offline = (t_off <= finish) & (t_off <= t_deadline)
    late = ~offline & (finish > t_deadline)
    cause = np.where(offline, OFFLINE, np.where(late, DEADLINE, 0))
    stopped = cause > 0
    t_stop = np.where(offline, t_off, np.where(late, t_deadline, finish))
    # the leg a stopped device is in: offline, the first active leg ending at or after it;
    # deadline, the last active leg started at or before it
    legs_idx = np.arange(num_legs)[:, None]
    off_leg = np.argmax(active & (end >= t_off), axis=0)
    started = active & (start <= t_deadline)
    dl_leg = num_legs - 1 - np.argmax(started[::-1], axis=0)
    stop_leg = np.where(offline, off_leg, np.where(late, dl_leg, num_legs))
    reached = active & (legs_idx <= stop_leg)  # legs whose start event happens
    completed = active & (legs_idx < stop_leg)
    spent = np.zeros((num_legs, n))
    for j, leg in enumerate(legs):
        full = end[j] - start[j] if leg.kind == "uplink" else duration[j]
        spent[j] = np.where(completed[j], full, 0.0)
    at_stop = stopped & (stop_leg < num_legs)
    cols = np.flatnonzero(at_stop)
    spent[stop_leg[cols], cols] = t_stop[cols] - start[stop_leg[cols], cols]
    _record_starts(ctx, plan, slots, dev, round_idx, start, reached)
    yield from _wait(env, ctx, dev, duration, active, finish, t_stop, late, offline, deadline)
    # after the wait: what the jobs record as they end
    rec, stats = ctx.recorder, ctx.device_stats
    ok = ~stopped
    # one chunk per (event, detail, leg): string columns stay a single value per chunk; the
    # table's canonical order puts the rows back by time and device
    for name in np.unique(done_of[ok]).tolist() if ok.any() else []:
        mine = ok & (done_of == name)
        rec.bulk(finish[mine], name, dev[mine], round_idx)
    for why, code in (("offline", OFFLINE), ("deadline", DEADLINE)):
        for j in np.unique(stop_leg[cause == code]).tolist():
            mine = (cause == code) & (stop_leg == j)
            leg_name = legs[j].name if j < num_legs else ""
            rec.bulk(t_stop[mine], "failure", dev[mine], round_idx, detail=why, leg=leg_name)
    counters = {"downlink": stats.bits_down, "uplink": stats.bits_up, "d2d": stats.bits_d2d}
    bits = plan.bits[:, slots]
    for j, leg in enumerate(legs):
        counter = counters.get(leg.kind)
        if counter is not None and completed[j].any():
            counter[dev[completed[j]]] += bits[j][completed[j]].astype(np.int64)
    stats.updates[dev] += (ok & ends_round).astype(np.int64)
    stats.failures[dev] += stopped.astype(np.int64)
    stats.jobs[dev] += ends_round.astype(np.int64) + (stopped & ~ends_round).astype(np.int64)
    busy = np.zeros(n)
    for j in range(num_legs):  # the processes' sum(spent): leg by leg, in order
        busy = busy + spent[j]
    stats.busy_s[dev] += busy
    legs_done = np.where(stopped, stop_leg, num_legs)
    outcomes = StageOutcomes(dev, ok, legs_done, t_stop, spent.T.copy())
    return outcomes, np.where(offline, "offline", "deadline")[stopped].tolist()


def _record_starts(ctx, plan, slots, dev, round_idx, start, reached) -> None:
    """Each leg's start event (with its planned duration, and band for transfers)."""
    rec = ctx.recorder
    if not rec.keeps_device_events:
        return
    for j, leg in enumerate(plan.legs):
        on = reached[j]
        if not on.any():
            continue
        shows_band = leg.kind in ("uplink", "d2d")
        band = plan.bandwidth_hz[j, slots][on] if shows_band else math.nan
        d = plan.duration_s[j, slots][on]
        rec.bulk(start[j][on], f"{leg.kind}_start", dev[on], round_idx, duration_s=d,
                 bandwidth_hz=band, leg=leg.name)  # fmt: skip


def _wait(env, ctx, dev, duration, active, finish, t_stop, late, offline, deadline):
    """Wait in SimPy until the stage is over, landing on exactly the time the processes
    would: the deadline event, the availability event of the device that stops last, or the
    leg timeouts of the device that finishes last, replayed in order."""
    if dev.size == 0:  # as an empty barrier: resume once the queue at this instant has run
        yield env.timeout(0)
        return
    if late.any():
        yield deadline
        return
    k = int(np.argmax(t_stop))
    if offline[k]:
        yield ctx.availability_event[int(dev[k])]
        return
    for j in range(active.shape[0]):
        if active[j, k]:
            yield env.timeout(float(duration[j, k]))
