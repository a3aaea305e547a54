"""HierFAVG: L. Liu, J. Zhang, S. H. Song, K. B. Letaief, "Client-Edge-Cloud Hierarchical
Federated Learning", ICC 2020 (arXiv:1905.06641); notes in papers/hierarchical_aircomp.md.

Every round is an edge round: each device trains ``training.local_steps`` (kappa1) steps from
its serving cell's edge model, and each edge averages the updates of its own devices
(example-weighted) into its new edge model. Every ``edge_rounds`` (kappa2) rounds the round
ends with a cloud aggregation: every edge sends its model up its backhaul and gets the cloud
model back (two backhaul legs of one model per cell); the cloud averages the edge models
weighted by the examples of the devices each edge aggregated since the last cloud round, and
every edge restarts from it. With one cell and ``edge_rounds: 1`` this is FedAvg.

Our choices: a device belongs to the cell that served it when the round started (a handover
mid-round either fails the round or finishes with the old cell, ``cells.handover``); an edge
none of whose devices delivered keeps its model and is left out of the cloud average; the
global model (evaluated, and the run's result) is the cloud model, which changes only at
cloud rounds.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from fl.protocol import Leg, RoundProtocol
from fl.state import ModelState
from fl.strategies.base import updates_of
from fl.strategies.fedavg import FedAvg, weighted_average
from fl.training import plan_batches, train_cohort


class HierFAVG(FedAvg):
    modes: ClassVar[frozenset[str]] = frozenset({"sync"})
    edge_aggregation = True

    def __init__(
        self,
        *,
        initial_state: ModelState,
        edge_rounds: int,
        clients_per_round: int | None = None,
        fraction: float | None = None,
    ):
        super().__init__(clients_per_round=clients_per_round, fraction=fraction)
        self.edge_rounds = edge_rounds
        self.cloud: ModelState = initial_state
        self.edges: dict[int, ModelState] = {}  # cell -> edge model (absent: the cloud's)
        self.edge_examples: dict[int, int] = {}  # cell -> examples aggregated since the cloud
        self.cell_of = np.zeros(0, dtype=np.int64)
        self.cloud_round = edge_rounds == 1
        self._protocols: dict[tuple[int, bool], RoundProtocol] = {}

    def assign_cells(self, cell_of: np.ndarray) -> None:
        self.cell_of = cell_of

    def begin_round(self, *, round_idx: int, reform: bool) -> None:
        self.cloud_round = (round_idx + 1) % self.edge_rounds == 0

    def round_metrics(self) -> dict[str, float]:
        return {"cloud_round": float(self.cloud_round)}

    def round_protocol(self, *, global_state, cohort):
        bits = self.model_bits(global_state)
        key = (bits, self.cloud_round)
        if key not in self._protocols:
            legs = [
                Leg("model_down", "downlink", bits=bits),
                Leg("train", "compute"),
                Leg("model_up", "uplink", bits=bits),
            ]
            if self.cloud_round:  # one model up each backhaul, the cloud model back down
                legs += [
                    Leg("edge_to_cloud", "backhaul", cell_bits=bits),
                    Leg("cloud_to_edge", "backhaul", cell_bits=bits),
                ]
            self._protocols[key] = RoundProtocol.of(*legs)
        return self._protocols[key]

    def _edge(self, cell: int) -> ModelState:
        return self.edges.get(cell, self.cloud)

    def local_updates(
        self, *, model, data, global_state, device_ids, rho, base_version, round_idx, work, rngs
    ):
        plan = plan_batches([data.client_indices[d] for d in device_ids], work, rngs)
        starts = [self._edge(int(self.cell_of[d])) for d in device_ids]
        stacked = {k: torch.stack([s[k] for s in starts]) for k in global_state}
        result = train_cohort(
            model, stacked, data.train_x, data.train_y, plan, work.lr, stacked_start=True
        )
        return updates_of(result, data, device_ids, base_version)

    def aggregate(self, *, round_idx, global_state, updates, failures):
        useful = sorted((u for u in updates if u.num_examples > 0), key=lambda u: u.device_id)
        for cell in sorted({int(self.cell_of[u.device_id]) for u in useful}):
            mine = [u for u in useful if int(self.cell_of[u.device_id]) == cell]
            self.edges[cell] = weighted_average(
                [u.state for u in mine], [u.num_examples for u in mine]
            )
            self.edge_examples[cell] = self.edge_examples.get(cell, 0) + sum(
                u.num_examples for u in mine
            )
        if self.cloud_round:
            cells = sorted(c for c, n in self.edge_examples.items() if n > 0)
            if cells:
                self.cloud = weighted_average(
                    [self.edges[c] for c in cells], [self.edge_examples[c] for c in cells]
                )
            self.edges, self.edge_examples = {}, {}
        return self.cloud
