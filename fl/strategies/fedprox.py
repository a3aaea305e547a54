"""FedProx: T. Li, A. K. Sahu, M. Zaheer, M. Sanjabi, A. Talwalkar, V. Smith, "Federated
Optimization in Heterogeneous Networks", MLSys 2020 (arXiv:1812.06127); notes in
papers/baselines_selection.md.

Device k minimises ``F_k(w) + (mu / 2) ||w - w_t||^2`` from the global model ``w_t``: every
local SGD step adds ``mu (w - w_t)`` to the mini-batch gradient (in the cohort's one batched
call, :func:`fl.training.train_cohort`'s ``proximal_mu``). Aggregation, traffic and compute
are FedAvg's; ``mu = 0`` is FedAvg exactly. We count the proximal term's arithmetic as free
(it is one multiply-add per parameter against a forward and backward pass).
"""

from __future__ import annotations

from typing import ClassVar

from fl.strategies.base import updates_of
from fl.strategies.fedavg import FedAvg
from fl.training import plan_batches, train_cohort


class FedProx(FedAvg):
    modes: ClassVar[frozenset[str]] = frozenset({"sync"})

    def __init__(self, *, mu: float, **cohort_and_server):
        """``mu``: the proximal weight; the rest as :class:`FedAvg` (cohort, server optimiser)."""
        super().__init__(**cohort_and_server)
        self.mu = mu

    def local_updates(
        self, *, model, data, global_state, device_ids, rho, base_version, round_idx, work, rngs
    ):
        plan = plan_batches([data.client_indices[d] for d in device_ids], work, rngs)
        result = train_cohort(
            model, global_state, data.train_x, data.train_y, plan, work.lr, proximal_mu=self.mu
        )
        return updates_of(result, data, device_ids, base_version)
