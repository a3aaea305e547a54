"""FedAsync: C. Xie, S. Koyejo, I. Gupta, "Asynchronous Federated Optimization",
arXiv:1903.03934 (OPT 2020). Notes: papers/async_baselines.md, section 2.

One server update per arrival: ``alpha_t = alpha * s(t - tau)`` and
``x_t = (1 - alpha_t) x_{t-1} + alpha_t x_new``, with ``x_new`` the device's whole trained model.
Plain local SGD (the proximal term rho = 0, as in most re-implementations).
"""

from __future__ import annotations

from typing import ClassVar

from fl.staleness import POLYNOMIAL_HALF, Staleness
from fl.state import ClientUpdate, ModelState
from fl.strategies.base import Strategy


class FedAsync(Strategy):
    modes: ClassVar[frozenset[str]] = frozenset({"async"})

    def __init__(self, *, alpha: float = 0.6, staleness: Staleness = POLYNOMIAL_HALF):
        self.alpha = alpha
        self.staleness = staleness

    def on_arrival(
        self, *, global_state: ModelState, version: int, update: ClientUpdate, now_s: float
    ) -> ModelState:
        weight = self.alpha * self.staleness(self.staleness_of(version=version, update=update))
        if update.state is global_state:  # mixing a model with itself (systems-only runs)
            return global_state
        return {
            k: (1.0 - weight) * v + weight * update.state[k].to(v.dtype)
            for k, v in global_state.items()
        }
