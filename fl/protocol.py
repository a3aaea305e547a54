"""Round protocols: what a strategy's round sends and computes, leg by leg (DESIGN 3b).

A round is a sequence of *stages* separated by *barriers*. Within a stage each participating
device runs the stage's legs one after the other (download, compute, upload, device-to-device);
a barrier waits for every participant of the stage (or the round's deadline) before the next
stage starts. The strategy declares **what** (participants, bits, cycles); the simulator decides
**when** (it times every leg from the channel and the device, allocates the uplink band per
uplink leg and interrupts at any leg).

Per-device quantities are given per cohort member, in cohort order (the sorted device ids the
engine hands to :meth:`fl.strategies.base.Strategy.round_protocol`); a scalar means "the same
for everyone". FedAvg's protocol is the three legs ``down(model) -> compute -> up(model)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

LegKind = Literal["downlink", "compute", "uplink", "d2d", "backhaul"]
LEG_KINDS: tuple[str, ...] = ("downlink", "compute", "uplink", "d2d", "backhaul")


@dataclass(frozen=True)
class Leg:
    """One transfer or computation of a stage.

    Attributes
    ----------
    name : str
        Names the leg in events and per-leg metric columns (``leg_<name>_s``).
    kind : "downlink" | "compute" | "uplink" | "d2d" | "backhaul"
    bits : float or array [n_cohort]
        Transfers: bits each participant sends (uplink, d2d) or receives (downlink); backhaul:
        bits each participant adds to its cell's edge <-> cloud transfer.
    cycle_share : float or array [n_cohort]
        Compute: cycles as a fraction of one full local-training job of the device
        (``cycles_per_sample * samples``). Use :meth:`fl.strategies.base.Strategy.flops_share`
        to derive it from the FLOPs the leg really runs.
    prunable_share : float
        Compute: a further share scaled by the device's kept fraction ``x = 1 - rho``.
    prunable_bits : float
        Uplink: the part of the payload that shrinks with pruning, at x = 1 (``bits`` is then
        the part that does not, e.g. a mask bitmap). Once rho is known the strategy's
        ``uplink_bits(rho)`` gives the exact total (kept entries are counted, not scaled).
    participants : bool array [n_cohort] or None
        Cohort members taking part (None: every member still in the round). A device that
        failed an earlier leg never takes part in a later one.
    receivers : int array [n_cohort] or None
        d2d: the device id each participant sends to (required for d2d legs).
    receiver_lost : str
        d2d: the failure reason of a sender whose receiver is gone (offline, failed, not in
        the round) before the round ends: what it sent never reaches the server.
    cell_bits : float
        backhaul (multi-cell networks): bits every cell's edge moves once, whatever its
        members (e.g. one edge model). A participant waits for its cell's whole transfer.
    """

    name: str
    kind: LegKind
    bits: ArrayLike = 0.0
    cycle_share: ArrayLike = 1.0
    prunable_share: float = 0.0
    prunable_bits: float = 0.0
    participants: NDArray[np.bool_] | None = None
    receivers: NDArray[np.int64] | None = None
    receiver_lost: str = "receiver_failed"
    cell_bits: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in LEG_KINDS:
            raise ValueError(f"leg {self.name!r}: kind must be one of {LEG_KINDS}, not {self.kind}")
        if self.kind == "d2d" and self.receivers is None:
            raise ValueError(f"d2d leg {self.name!r} needs receivers")


@dataclass(frozen=True)
class Barrier:
    """Marks the end of a stage: the server waits for every participant (or the deadline)."""

    name: str


@dataclass(frozen=True)
class RoundProtocol:
    """Stages of legs; ``barriers[i]`` closes ``stages[i]`` (the last one is the publish).

    ``fixed_rho`` is the pruning ratio every device uses this round, or None when the joint
    bandwidth allocator chooses it per device (adaptive pruning, first stage only).
    """

    stages: tuple[tuple[Leg, ...], ...]
    barriers: tuple[str, ...]
    fixed_rho: float | None = 0.0

    @classmethod
    def of(cls, *items: Leg | Barrier, fixed_rho: float | None = 0.0) -> RoundProtocol:
        """Build from legs and barriers in order; a final barrier ``publish`` is implied."""
        stages: list[tuple[Leg, ...]] = []
        names: list[str] = []
        current: list[Leg] = []
        for item in items:
            if isinstance(item, Barrier):
                stages.append(tuple(current))
                names.append(item.name)
                current = []
            else:
                current.append(item)
        if current or not stages:
            stages.append(tuple(current))
            names.append("publish")
        for stage, name in zip(stages, names, strict=True):
            if not stage:
                raise ValueError(f"stage before barrier {name!r} has no legs")
        seen = [leg.name for stage in stages for leg in stage]
        if len(set(seen)) != len(seen):
            raise ValueError(f"leg names must be unique within a round: {seen}")
        return cls(tuple(stages), tuple(names), fixed_rho)

    @property
    def legs(self) -> tuple[Leg, ...]:
        return tuple(leg for stage in self.stages for leg in stage)

    @functools.cached_property
    def uniform_stages(self) -> tuple[bool, ...]:
        """Per stage: every cohort member takes part in every leg with the same bits and cycle
        share, and no leg is d2d (the engines plan such stages with fewer array operations)."""
        return tuple(
            all(
                leg.participants is None
                and leg.kind != "d2d"
                and isinstance(leg.bits, int | float)
                and isinstance(leg.cycle_share, int | float)
                for leg in stage
            )
            for stage in self.stages
        )

    @property
    def uses_d2d(self) -> bool:
        return any(leg.kind == "d2d" for leg in self.legs)


def three_leg(bits_down: ArrayLike, bits_up: ArrayLike) -> RoundProtocol:
    """FedAvg's round: ``down(model) -> compute(local training) -> up(model)``."""
    return RoundProtocol.of(
        Leg("model_down", "downlink", bits=bits_down),
        Leg("train", "compute"),
        Leg("model_up", "uplink", bits=bits_up),
    )


def relayed_over_backhaul(protocol: RoundProtocol, n: int) -> RoundProtocol:
    """A flat strategy's round in a multi-cell network: each edge first fetches the model from
    the cloud (``cloud_to_edge``, once per cell: the largest downlink of the first stage), and
    at the end relays every member's uploads to the cloud (``edge_to_cloud``: each member's
    uplink bits). ``n``: cohort size. Both legs are backhaul legs."""
    down = max((float(np.max(per_member(leg.bits, n))) for leg in protocol.stages[0]
                if leg.kind == "downlink"), default=0.0)  # fmt: skip
    up = np.zeros(n)
    for leg in protocol.legs:
        if leg.kind == "uplink":
            up += per_member(leg.bits, n) + leg.prunable_bits
    stages = [list(stage) for stage in protocol.stages]
    stages[0].insert(0, Leg("cloud_to_edge", "backhaul", cell_bits=down))
    stages[-1].append(Leg("edge_to_cloud", "backhaul", bits=up if n else 0.0))
    return RoundProtocol(
        tuple(tuple(stage) for stage in stages), protocol.barriers, protocol.fixed_rho
    )


def per_member(value: ArrayLike, n: int, dtype=float) -> NDArray:
    """A leg quantity as an array [n] (a scalar repeated, an array checked for length)."""
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        return np.full(n, arr.item(), dtype=dtype)
    if arr.shape != (n,):
        raise ValueError(
            f"expected a scalar or {n} values (one per cohort member), got {arr.shape}"
        )
    return arr


__all__: Sequence[str] = ["LEG_KINDS", "Barrier", "Leg", "LegKind", "RoundProtocol", "three_leg"]
