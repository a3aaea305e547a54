"""The strategy interface: keyword-only hooks that return new state.

A strategy declares the execution ``modes`` it supports ({"sync"} or {"async"}). The simulator's
SimPy processes own time: who is dispatched when, deadlines, arrivals and interrupts. The
strategy says what a round costs (:meth:`round_work`), trains the devices that delivered
(:meth:`local_updates`, zero virtual time) and aggregates (:meth:`aggregate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from fl.datasets import FederatedData
from fl.state import ClientUpdate, Failure, ModelState, state_bits
from fl.training import LocalWork, plan_batches, train_cohort


@dataclass(frozen=True)
class RoundWork:
    """What one device's round costs, before the kept fraction x = 1 - rho is known.

    Compute cycles = ``cycles_per_sample * samples * (fixed_cycle_share + x *
    prunable_cycle_share)``; uplink bits = ``fixed_uplink_bits + prunable_uplink_bits(x)``.
    ``fixed_rho`` is the pruning ratio the strategy always uses, or None when the bandwidth
    allocator chooses it each round (adaptive pruning).
    """

    fixed_cycle_share: float = 1.0
    prunable_cycle_share: float = 0.0
    downlink_bits: int = 0
    fixed_uplink_bits: int = 0
    prunable_uplink_bits_full: int = 0
    fixed_rho: float | None = 0.0


class Strategy:
    """Base class; FedAvg-like defaults for everything but :meth:`select` and :meth:`aggregate`."""

    modes: ClassVar[frozenset[str]] = frozenset()
    personalized: ClassVar[bool] = False  # each device evaluates its own model
    bits_per_param: int = 32

    def select(
        self, *, round_idx: int, available_ids: Sequence[int], rng: np.random.Generator
    ) -> list[int]:
        """Device ids for this round's cohort, sorted, drawn from ``available_ids``."""
        raise NotImplementedError

    def round_work(self, *, global_state: ModelState) -> RoundWork:
        """Default: the whole model down and up, no pruning."""
        bits = state_bits(global_state, self.bits_per_param)
        return RoundWork(downlink_bits=bits, fixed_uplink_bits=bits)

    def uplink_bits(self, *, global_state: ModelState, rho: np.ndarray) -> np.ndarray:
        """Bits each device sends at pruning ratios ``rho`` [n] (exact tensor counts)."""
        return np.full(len(rho), self.round_work(global_state=global_state).fixed_uplink_bits)

    def local_updates(
        self,
        *,
        model: nn.Module,
        data: FederatedData,
        global_state: ModelState,
        device_ids: list[int],
        rho: np.ndarray,
        base_version: int,
        round_idx: int,
        work: LocalWork,
        rngs: list[np.random.Generator],
    ) -> list[ClientUpdate]:
        """Train the delivering devices from the global model, all at once (default)."""
        plan = plan_batches([data.client_indices[d] for d in device_ids], work, rngs)
        result = train_cohort(model, global_state, data.train_x, data.train_y, plan, work.lr)
        losses = result.train_loss.tolist()
        return [
            ClientUpdate(
                device_id=d,
                base_version=base_version,
                state={k: v[i] for k, v in result.stacked_state.items()},
                num_examples=len(data.client_indices[d]),
                metrics={"train_loss": losses[i]},
            )
            for i, d in enumerate(device_ids)
        ]

    def device_states(self, *, global_state: ModelState, device_ids: list[int]) -> ModelState:
        """The model each device runs, stacked [C, ...] (default: the global model)."""
        c = len(device_ids)
        return {k: v.unsqueeze(0).expand(c, *v.shape) for k, v in global_state.items()}

    def aggregate(
        self,
        *,
        round_idx: int,
        global_state: ModelState,
        updates: Sequence[ClientUpdate],
        failures: Sequence[Failure],
    ) -> ModelState:
        """New global state from this round's updates (synchronous mode)."""
        raise NotImplementedError

    def dispatch_state(self, *, device_id: int, global_state: ModelState) -> ModelState:
        """Asynchronous mode: the model a dispatched device downloads and trains from
        (default: the current global model)."""
        return global_state

    def on_arrival(
        self, *, global_state: ModelState, version: int, update: ClientUpdate, now_s: float
    ) -> ModelState | None:
        """Asynchronous mode: the new global state after one arrival, or None to keep the
        current one (no new version). Staleness is ``version - update.base_version``."""
        raise NotImplementedError


def stack(states: Sequence[ModelState]) -> ModelState:
    return {k: torch.stack([s[k] for s in states]) for k in states[0]}
