"""One asynchronous job as a chain of SimPy events with callbacks, instead of a process.

The asynchronous server dispatches a job per arrival (10^4 devices training at once means
thousands of dispatches per virtual second). A SimPy process per job costs its start-up
event, a generator resumed at every leg, its end event, and the plumbing of ``yield from``;
:class:`CallbackJob` runs the same legs as timeouts (or a transfer on the re-shared uplink)
whose callbacks start the next leg. What it records, counts and posts is exactly what
:func:`simulator.engine.processes.client_job` followed by the arrival post records, counts
and posts, in the same order and at the same virtual times:

* each active leg logs its start event, then waits its duration (or its transfer);
* at the end: the closing event, the device counters, the arrival;
* :meth:`interrupt` (the device went offline, a handover) takes effect as SimPy's does, at
  an urgent event at the same instant, so a leg ending at that instant but processed first
  still completes; a transfer in flight is cancelled; the failure is logged with the leg it
  stopped in;
* :meth:`close` (the run stopped with the job in flight) counts the job and its busy time as
  a closed generator's ``finally`` does.

``simulation.device_jobs: processes`` keeps the processes; ``tests/simulator/
test_async_equivalence.py`` compares the two on scenarios with Markov availability, the
re-shared uplink and multi-leg protocols.
"""

from __future__ import annotations

import math

import simpy
from simpy.events import URGENT

from simulator.engine.stage_outcomes import JobOutcome


class _Stop(simpy.Event):
    """A job's interrupt: triggered at creation and scheduled urgent, as SimPy's own
    ``Interruption`` of a process is (and built the way SimPy builds it)."""

    def __init__(self, env: simpy.Environment, cause: str, callback) -> None:
        super().__init__(env)
        self._ok, self._value = True, cause
        self.callbacks.append(callback)
        env.schedule(self, URGENT)


class CallbackJob:
    """A dispatched job ``job`` (an :class:`~simulator.engine.async_processes.AsyncJob`);
    ``post(job, outcome)`` is called when it ends (delivered or stopped)."""

    __slots__ = ("env", "ctx", "job", "post", "spent", "leg", "leg_start_s", "waiting", "alive")

    def __init__(self, env: simpy.Environment, ctx, job, post) -> None:
        self.env, self.ctx, self.job, self.post = env, ctx, job, post
        self.spent = [0.0] * len(job.phases.table.steps)
        self.leg = 0
        self.leg_start_s = env.now
        self.waiting: simpy.Event | None = None  # the event that ends the current leg
        self.alive = True

    def start(self) -> None:
        """Begin the first leg (after the job is registered as running, as a process's first
        step runs after ``env.process`` returned)."""
        self._begin(0)

    @property
    def is_alive(self) -> bool:
        return self.alive

    def interrupt(self, cause: str) -> None:
        """Stop the job, as ``Process.interrupt`` does: at an urgent event now."""
        if not self.alive:
            raise RuntimeError(f"job of device {self.job.device_id} has ended")
        _Stop(self.env, cause, self._on_interrupt)

    def close(self) -> None:
        """The run stopped with this job in flight: count it as a closed process does."""
        if self.alive:
            self.alive = False
            self._count_job()

    # --- legs ---------------------------------------------------------------------------------
    def _begin(self, j: int) -> None:
        """Start the first active leg from ``j`` (or finish, when none is left)."""
        phases = self.job.phases
        table, i, dev = phases.table, phases.slot, phases.device_id
        env, rec, shared = self.env, self.ctx.recorder, self.ctx.shared_uplink
        steps = table.steps
        while j < len(steps):
            if not table.active[j][i]:
                j += 1
                continue
            step = steps[j]
            self.leg, self.leg_start_s = j, env.now
            if shared is not None and step.kind == "uplink":
                rec.event(env.now, "uplink_start", dev, phases.round_idx, math.nan, math.nan,
                          "", step.name)  # fmt: skip
                bits = table.bits[j][i]
                if bits <= 0:  # nothing to send: the leg ends at once, as ``send`` returns
                    self._end(j)
                    j += 1
                    continue
                done = shared.start(dev, bits, phases.gamma_ul_hz)
            else:
                d = table.duration_s[j][i]
                band = table.bandwidth_hz[j][i] if step.shows_band else math.nan
                rec.event(env.now, step.start_event, dev, phases.round_idx, d, band, "",
                          step.name)  # fmt: skip
                done = env.timeout(d)
            self.waiting = done
            done.callbacks.append(self._on_leg_end)
            return
        self._finish()

    def _end(self, j: int) -> None:
        """Leg ``j`` is done: its time spent and bits counted."""
        table, i = self.job.phases.table, self.job.phases.slot
        step = table.steps[j]
        if step.kind == "uplink":  # read off the clock, shared or not
            self.spent[j] = self.env.now - self.leg_start_s
        else:
            self.spent[j] = table.duration_s[j][i]
        if step.bits_counter is not None:
            step.bits_counter[self.job.device_id] += int(table.bits[j][i])

    def _on_leg_end(self, event: simpy.Event) -> None:
        if event is not self.waiting:  # interrupted while this leg was pending
            return
        self.waiting = None
        self._end(self.leg)
        self._begin(self.leg + 1)

    def _finish(self) -> None:
        phases, stats = self.job.phases, self.ctx.device_stats
        dev, now = phases.device_id, self.env.now
        self.ctx.recorder.event(now, phases.done_event, dev, phases.round_idx)
        if phases.ends_round:
            stats.updates[dev] += 1
        self.alive = False
        self._count_job()
        self.post(self.job, JobOutcome(dev, len(self.spent), "", now, self.spent))

    def _on_interrupt(self, event: simpy.Event) -> None:
        if not self.alive:  # ended at this instant before the interrupt came through
            return
        phases, stats, now = self.job.phases, self.ctx.device_stats, self.env.now
        dev, j = phases.device_id, self.leg
        if self.ctx.shared_uplink is not None and self.waiting is not None:
            self.ctx.shared_uplink.cancel(dev)  # no-op unless a transfer is in flight
        self.waiting = None
        self.spent[j] = now - self.leg_start_s
        reason = str(event.value)
        self.ctx.recorder.event(now, "failure", dev, phases.round_idx, math.nan, math.nan,
                                reason, phases.table.steps[j].name)  # fmt: skip
        stats.failures[dev] += 1
        stats.jobs[dev] += not phases.ends_round
        self.alive = False
        self._count_job()
        self.post(self.job, JobOutcome(dev, j, reason, now, self.spent))

    def _count_job(self) -> None:
        """What the process's ``finally`` does: off the running list, the job and its busy
        time counted."""
        phases, stats = self.job.phases, self.ctx.device_stats
        dev = phases.device_id
        self.ctx.running.pop(dev, None)
        stats.jobs[dev] += phases.ends_round
        stats.busy_s[dev] += sum(self.spent)
