"""FedBuff: J. Nguyen et al., "Federated Learning with Buffered Asynchronous Aggregation",
arXiv:2106.06639 (AISTATS 2022). Notes: papers/async_baselines.md, section 3.

Each arrival adds ``s(tau) * Delta_i`` to a buffer, ``Delta_i = start_i - trained_i`` (against the
device's own starting model); every ``buffer_size`` arrivals the server steps
``w <- w - server_lr * buffer_sum / K`` and publishes. ``weighting: examples`` (our switch)
replaces ``1/K`` by each update's share of the buffer's examples, the weighting FedAvg uses: with
equal delays, K = cohort, server_lr = 1 and constant staleness it reproduces FedAvg exactly.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from fl.staleness import POLYNOMIAL_HALF, Staleness
from fl.state import ClientUpdate, ModelState
from fl.strategies.base import Strategy


class FedBuff(Strategy):
    modes: ClassVar[frozenset[str]] = frozenset({"async"})

    def __init__(
        self,
        *,
        buffer_size: int = 10,
        server_lr: float = 1.0,
        staleness: Staleness = POLYNOMIAL_HALF,
        weighting: str = "uniform",
    ):
        self.buffer_size, self.server_lr = buffer_size, server_lr
        self.staleness, self.weighting = staleness, weighting
        self._buffer: list[tuple[float, int, ModelState | None]] = []  # (s(tau), examples, delta)

    def on_arrival(
        self, *, global_state: ModelState, version: int, update: ClientUpdate, now_s: float
    ) -> ModelState | None:
        if update.start_state is None:
            raise ValueError("FedBuff needs the update's starting model to form its delta")
        # an update that is its own starting model (systems-only runs train nothing) moves
        # nothing: no zero delta is built or summed, which was most of such a run's cost
        delta = (
            None
            if update.state is update.start_state
            else {k: update.start_state[k] - update.state[k] for k in global_state}
        )
        self._buffer.append(
            (
                self.staleness(self.staleness_of(version=version, update=update)),
                update.num_examples,
                delta,
            )
        )
        if len(self._buffer) < self.buffer_size:
            return None
        if self.weighting == "examples":
            total = sum(n for _, n, _ in self._buffer)
            shares = [n / total for _, n, _ in self._buffer]
        else:
            shares = [1.0 / len(self._buffer)] * len(self._buffer)
        moved = [
            (share * s, d)
            for share, (s, _, d) in zip(shares, self._buffer, strict=True)
            if d is not None
        ]
        self._buffer.clear()
        if not moved:  # a new version of the same model
            return global_state
        step = {k: sum(weight * d[k].double() for weight, d in moved) for k in global_state}
        return {
            k: (v.double() - self.server_lr * torch.as_tensor(step[k])).to(v.dtype)
            for k, v in global_state.items()
        }
