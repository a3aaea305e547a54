"""The strategy interface: keyword-only hooks that return new state.

A strategy declares the execution ``modes`` it supports ({"sync"} or {"async"}). The simulator's
SimPy processes own time: who is dispatched when, deadlines, arrivals and interrupts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from fl.state import ClientUpdate, Failure, ModelState, state_bits


class Strategy:
    """Base class; the synchronous hooks are :meth:`select` and :meth:`aggregate`."""

    modes: ClassVar[frozenset[str]] = frozenset()
    bits_per_param: int = 32

    def select(
        self, *, round_idx: int, available_ids: Sequence[int], rng: np.random.Generator
    ) -> list[int]:
        """Device ids for this round's cohort, sorted, drawn from ``available_ids``."""
        raise NotImplementedError

    def downlink_bits(self, *, global_state: ModelState) -> int:
        """Bits the server sends each selected device (default: the whole model)."""
        return state_bits(global_state, self.bits_per_param)

    def uplink_bits(self, *, global_state: ModelState) -> int:
        """Bits each device sends back (default: a model-sized update)."""
        return state_bits(global_state, self.bits_per_param)

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
