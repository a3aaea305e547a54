"""FedAvg: H. B. McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017.

Each round a cohort trains locally from the global model; the server replaces the global model
with the average of the returned models weighted by local example counts. With no updates
(every device failed) the global model is kept unchanged. With a ``server_optimizer`` the
average is the target of an adaptive server step (fl/server_optimizers.py) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from fl.server_optimizers import ServerOptimizer
from fl.state import ModelState
from fl.strategies.base import Strategy


def weighted_average(states: Sequence[ModelState], weights: Sequence[float]) -> ModelState:
    """``sum_k w_k s_k / sum_k w_k`` per tensor. Callers fix the order for reproducibility."""
    w = torch.tensor(weights, dtype=torch.float64, device=next(iter(states[0].values())).device)
    w = w / w.sum()
    return {
        name: torch.tensordot(w, torch.stack([s[name] for s in states]).double(), dims=1).to(
            states[0][name].dtype
        )
        for name in states[0]
    }


class FedAvg(Strategy):
    modes: ClassVar[frozenset[str]] = frozenset({"sync"})

    def __init__(
        self,
        *,
        clients_per_round: int | None = None,
        fraction: float | None = None,
        server_optimizer: ServerOptimizer | None = None,
    ):
        self.clients_per_round = clients_per_round
        self.fraction = fraction
        self.server_optimizer = server_optimizer

    def cohort_size(self, num_available: int) -> int:
        if self.clients_per_round is not None:
            return min(self.clients_per_round, num_available)
        if self.fraction is not None:
            return min(num_available, max(1, int(round(self.fraction * num_available))))
        return num_available

    def select(self, *, round_idx, available_ids, rng):
        k = self.cohort_size(len(available_ids))
        if k == len(available_ids):
            return sorted(map(int, available_ids))
        chosen = rng.choice(np.asarray(sorted(available_ids)), size=k, replace=False)
        return sorted(int(i) for i in chosen)

    def aggregate(self, *, round_idx, global_state, updates, failures):
        useful = sorted((u for u in updates if u.num_examples > 0), key=lambda u: u.device_id)
        if not useful:
            return global_state
        average = weighted_average([u.state for u in useful], [u.num_examples for u in useful])
        return self.server_step(global_state, average)

    def server_step(self, global_state: ModelState, average: ModelState) -> ModelState:
        """The new global model from the round's average: the average itself, or the server
        optimiser's step towards it."""
        if self.server_optimizer is None:
            return average
        return self.server_optimizer.step(global_state, average)
