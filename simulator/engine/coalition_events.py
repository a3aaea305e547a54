"""When coalitions re-form and who heads them: the simulator's side of a strategy that forms
groups (``Strategy.reform_clock``; fl/strategies/coalition.py says *what* they are).

* Re-forming rounds: round 0 (the first coalitions), then every ``every_rounds`` rounds, or,
  with ``every_s``, the first round that starts at or after each multiple of ``every_s``; a
  clock process marks each multiple with a ``reform_due`` event at exactly that time.
* At the end of a re-forming round: one ``reform`` event, one ``coalition_change`` event per
  device whose coalition changed (detail ``old -> new``; -1 = not placed before), then heads
  are chosen: ``medoid`` (the member nearest its coalition's barycenter in weight space, from
  the strategy) or ``best_channel`` (the member with the strongest mean uplink: path loss,
  shadowing and transmit power, no fading; decided here, where the channel is known).
* Metrics columns: ``coalition_moves``, ``coalition_purity`` (against the true groups of a
  clustered partition; nan otherwise), ``within_coalition_distance`` and
  ``between_coalition_distance`` (weight space, at re-formings; nan in other rounds).
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from fl.coalitions import distances, purity
from simulator.engine.recorder import SERVER


def reform_clock(env: simpy.Environment, ctx, every_s: float):
    """Mark every multiple of ``every_s`` as due for a re-forming (its own events)."""
    while True:
        yield env.timeout(every_s)
        ctx.reform_due = True
        ctx.recorder.event(env.now, "reform_due", SERVER)


def is_reform_round(ctx, round_idx: int) -> bool:
    """Whether the round about to start ends in a re-forming."""
    every_rounds, _ = ctx.world.strategy.reform_clock()
    if ctx.reforms == 0:
        return True
    if every_rounds is not None:
        return round_idx % every_rounds == 0
    return ctx.reform_due


def after_round(ctx, round_idx: int, before: np.ndarray, reformed: bool, row: dict) -> None:
    """Events, heads and metrics columns once a round of a coalition strategy published."""
    world, rec = ctx.world, ctx.recorder
    strategy = world.strategy
    after = strategy.membership
    now = row["time_s"]
    within = between = math.nan
    moves = 0
    if reformed:
        ctx.reforms += 1
        moved = np.flatnonzero(before != after)
        moves = int(moved.size)
        strategy.heads = _heads(ctx, after)
        heads = ", ".join(f"{c}:{d}" for c, d in sorted(strategy.heads.items()))
        count = int(np.unique(after[after >= 0]).size)
        rec.event(now, "reform", SERVER, round_idx, detail=f"{count} coalitions; heads {heads}")
        for d in moved.tolist():
            rec.event(now, "coalition_change", d, round_idx, detail=f"{before[d]} -> {after[d]}")
        x, ids = strategy.weights_of_last_reform()
        if x is not None and ids is not None:
            within, between = distances(x, after[ids])
    truth = None if world.data is None else world.data.device_groups
    row.update(
        coalition_moves=moves,
        coalition_purity=math.nan if truth is None else purity(after, truth),
        within_coalition_distance=within,
        between_coalition_distance=between,
    )


def _heads(ctx, membership: np.ndarray) -> dict[int, int]:
    strategy = ctx.world.strategy
    if strategy.cfg.head == "medoid":
        return dict(strategy.medoids)
    strength = ctx.costs.static_ul * ctx.costs.device_w  # mean received power per device
    heads = {}
    for c in np.unique(membership[membership >= 0]).tolist():
        members = np.flatnonzero(membership == c)
        heads[int(c)] = int(members[np.argmax(strength[members])])
    return heads
