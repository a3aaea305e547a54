"""SCAFFOLD: S. P. Karimireddy, S. Kale, M. Mohri, S. J. Reddi, S. U. Stich, A. T. Suresh,
"SCAFFOLD: Stochastic Controlled Averaging for Federated Learning", ICML 2020
(arXiv:1910.06378), with the paper's option II control variates; notes in
papers/baselines_selection.md.

State: the server's control variate ``c`` and one ``c_i`` per device (model-shaped, zero at the
start; ``c_i`` lives on device i). Device i runs K local steps from ``y_i = x``:
``y_i <- y_i - eta_l (g_i(y_i) - c_i + c)`` (the cohort's one batched call, with ``c - c_i``
as each client's gradient offset), then ``c_i+ = c_i - c + (x - y_i) / (K eta_l)`` and sends
``dy_i = y_i - x`` and ``dc_i = c_i+ - c_i``. K is the client's own count of real steps (a
device with no data sends nothing useful and keeps its ``c_i``). Server, over the delivering
set S of N devices: ``x <- x + eta_g mean(dy_i)`` (the server step, sgd with lr ``eta_g``) and
``c <- c + (|S| / N) mean(dc_i)``.

Traffic: down x and c, up dy and dc: twice FedAvg's bits each way. ``weighting: examples``
weighs both means by local examples instead of the paper's plain mean (our switch).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from fl.protocol import three_leg
from fl.state import ModelState
from fl.strategies.base import updates_of
from fl.strategies.fedavg import FedAvg, weighted_average
from fl.training import plan_batches, train_cohort


class Scaffold(FedAvg):
    modes: ClassVar[frozenset[str]] = frozenset({"sync"})

    def __init__(
        self,
        *,
        initial_state: ModelState,
        num_devices: int,
        weighting: str = "uniform",
        **cohort_and_server,
    ):
        """The rest as :class:`FedAvg` (cohort, server optimiser: ``sgd`` with lr eta_g)."""
        super().__init__(**cohort_and_server)
        self.num_devices = num_devices
        self.weighting = weighting
        self.names = [k for k, v in initial_state.items() if v.is_floating_point()]
        self.c: ModelState = {k: torch.zeros_like(initial_state[k]) for k in self.names}
        self.c_device: dict[int, ModelState] = {}  # c_i, kept by device i (absent: zero)
        self.delta_c: dict[int, ModelState] = {}  # dc_i of this round's trained devices

    def round_protocol(self, *, global_state, cohort):
        bits = 2 * self.model_bits(global_state)  # (x, c) down, (dy, dc) up
        cached = self.__dict__.get("_scaffold_legs")
        if cached is None or cached[0] != bits:
            cached = self._scaffold_legs = (bits, three_leg(bits, bits))
        return cached[1]

    def _c_of(self, device_id: int) -> ModelState:
        own = self.c_device.get(device_id)
        return own if own is not None else {k: torch.zeros_like(v) for k, v in self.c.items()}

    def local_updates(
        self, *, model, data, global_state, device_ids, rho, base_version, round_idx, work, rngs
    ):
        plan = plan_batches([data.client_indices[d] for d in device_ids], work, rngs)
        own = [self._c_of(d) for d in device_ids]
        offsets = {k: torch.stack([self.c[k] - ci[k] for ci in own]) for k in self.names}
        result = train_cohort(
            model, global_state, data.train_x, data.train_y, plan, work.lr, grad_offsets=offsets
        )
        steps = (plan.mask.sum(dim=2) > 0).sum(dim=1).tolist()  # K per client
        self.delta_c = {}
        for i, d in enumerate(device_ids):
            if steps[i] == 0:
                continue
            scale = 1.0 / (steps[i] * work.lr)
            new_c = {
                k: own[i][k]
                - self.c[k]
                + (global_state[k] - result.stacked_state[k][i].to(global_state[k].device)) * scale
                for k in self.names
            }
            self.delta_c[d] = {k: new_c[k] - own[i][k] for k in self.names}
            self.c_device[d] = new_c
        return updates_of(result, data, device_ids, base_version)

    def aggregate(self, *, round_idx, global_state, updates, failures):
        useful = sorted(
            (u for u in updates if u.num_examples > 0 and u.device_id in self.delta_c),
            key=lambda u: u.device_id,
        )
        if not useful:
            return global_state
        weights = [1.0 if self.weighting == "uniform" else u.num_examples for u in useful]
        average = weighted_average([u.state for u in useful], weights)
        mean_dc = weighted_average([self.delta_c[u.device_id] for u in useful], weights)
        share = len(useful) / self.num_devices
        self.c = {k: self.c[k] + share * mean_dc[k] for k in self.names}
        return self.server_step(global_state, average)
