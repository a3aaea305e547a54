"""Jobs for asynchronous dispatches, read off one plan of the whole population per coherence
block once dispatching is dense enough.

The asynchronous server plans each dispatch as it happens: with every device training at once,
that is one device per arrival, and planning a one-device stage (fading draws, Shannon rates,
a stage table) costs dozens of numpy calls on one-element arrays. Yet an equal-slot plan is a
pure function of the device, the coherence block of the dispatch (both links' fading), the
devices' static gains, the protocol's legs and the slot count. So once a block has seen a 64th
of the population dispatched one by one, the whole population is planned for that block in
one vector pass and later dispatches in the block take their column of it. Sparse dispatching
(a few jobs per block among many devices) never reaches the threshold and pays nothing extra;
past it, the pass costs less than the one-by-one plans already made.

Plans whose times depend on more than that are always made per dispatch: round-time profile
draws (keyed by the job count), uplink bits that follow the model (``prunable_bits``), and
protocols whose stage is not the same for every device. The population plan runs the same
elementwise arithmetic as a one-device plan, so a device's times are the same floats either
way (``tests/simulator/test_async_equivalence.py``).
"""

from __future__ import annotations

import numpy as np

from fl.protocol import RoundProtocol
from simulator.engine.costs import plan_stage
from simulator.engine.processes import DONE_EVENT, Job, RunContext, StageTable, stage_jobs

# a block's population plan is made once this fraction of the population was dispatched in it
_TABLE_AFTER_FRACTION = 1 / 64


class DispatchPlans:
    """Plans the jobs of each dispatch: ``jobs(protocol, candidates, now_s, job_idx)``."""

    def __init__(self, ctx: RunContext, slots: int):
        self.ctx, self.slots = ctx, slots
        world = ctx.world
        self._every = np.arange(world.num_devices)
        self._threshold = max(1, int(world.num_devices * _TABLE_AFTER_FRACTION))
        self._key: tuple = ()  # what the current block's population plan was made for
        self._served = 0  # devices planned one by one under ``_key``
        self._table: tuple | None = None  # (stage table, closing event, gamma, bits down)
        # ``simulation.device_jobs: processes``: the reference path, every dispatch planned
        self.one_by_one = world.scenario.simulation.device_jobs == "processes"

    def jobs(
        self, protocol: RoundProtocol, candidates: np.ndarray, now_s: float, job_idx
    ) -> tuple[list[Job], list[int]]:
        """One :class:`Job` per candidate (sorted device ids) and the bits each downloads."""
        ctx = self.ctx
        key = None if self.one_by_one else self._key_of(protocol, now_s)
        if key is None:  # times that depend on more than the block: plan this dispatch
            return self._planned(protocol, candidates, now_s, job_idx)
        if not _same(key, self._key):
            self._key, self._served, self._table = key, 0, None
        if self._table is None:
            self._served += candidates.size
            if self._served < self._threshold:
                return self._planned(protocol, candidates, now_s, job_idx)
            plan = self._plan(protocol, self._every, now_s, job_idx=0)
            # every device takes part in every leg of a uniform stage: its last leg closes it
            assert plan.active.all()
            table = StageTable.of(plan, ctx.device_stats, ctx.leg_steps)
            done = DONE_EVENT[plan.legs[-1].kind]
            self._table = (table, done, plan.gamma_ul_hz.tolist(), _bits_down(plan))
        table, done, gamma, bits_down = self._table
        version = ctx.version
        ids = candidates.tolist()
        return (
            [Job(dev, version, table, dev, done, gamma[dev], True) for dev in ids],
            [bits_down[dev] for dev in ids],
        )

    def _key_of(self, protocol: RoundProtocol, now_s: float) -> tuple | None:
        """What a population plan made now depends on, or None when one would not do."""
        world, costs = self.ctx.world, self.ctx.costs
        if world.round_time is not None or not protocol.uniform_stages[0]:
            return None
        if any(leg.prunable_bits for leg in protocol.stages[0]):
            return None
        return (
            world.downlink.fading.block_of(now_s),
            world.uplink.fading.block_of(now_s),
            # compared by identity (see _same): strategies keep their protocol while the
            # model's size holds, and the static gains are replaced, never changed in place,
            # when devices move
            protocol.stages[0],
            costs.static_ul,
            costs.static_dl,
        )

    def _plan(self, protocol, ids, now_s, *, job_idx):
        world, ctx = self.ctx.world, self.ctx
        alive = np.ones(ids.size, dtype=bool)
        return plan_stage(world, ctx.costs, protocol, 0, ids, alive, now_s, job_idx=job_idx,
                          slots=self.slots)  # fmt: skip

    def _planned(self, protocol, candidates, now_s, job_idx):
        """This dispatch's own plan (one stage: validated)."""
        plan = self._plan(protocol, candidates, now_s, job_idx=job_idx)
        return stage_jobs(plan, self.ctx.version, None, 0, self.ctx), _bits_down(plan)


def _same(key: tuple, other: tuple) -> bool:
    """Keys equal: blocks by value, legs and gain arrays by identity (both are held by the
    key, so an identity is never reused for another object)."""
    if len(key) != len(other):
        return False
    return key[:2] == other[:2] and all(a is b for a, b in zip(key[2:], other[2:], strict=True))


def _bits_down(plan) -> list[int]:
    """Bits each planned device receives on the stage's downlink legs."""
    downlink = np.array([leg.kind == "downlink" for leg in plan.legs])
    return [int(b) for b in plan.bits[downlink].sum(axis=0).tolist()]
