"""The strategy interface: keyword-only hooks that return new state.

A strategy declares the execution ``modes`` it supports ({"sync"} or {"async"}). The simulator's
SimPy processes own time: who is dispatched when, deadlines, arrivals and interrupts. The
strategy says what a round sends and computes (:meth:`round_protocol`, legs and barriers),
trains the devices that delivered (:meth:`local_updates`, zero virtual time) and aggregates
(:meth:`aggregate`).

Hooks for strategies with their own parametrisation: :meth:`build_model` (its own model and
initial state from a seeded generator), :meth:`rng` / :meth:`torch_rng` (its own streams keyed
by purpose), :meth:`round_metrics` (its own metrics columns), ``personalized`` per instance,
and :meth:`flops_share` (a compute leg's cost from the FLOPs it runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from fl.datasets import FederatedData
from fl.protocol import RoundProtocol, three_leg
from fl.state import ClientUpdate, Failure, ModelState, state_bits
from fl.training import CohortResult, LocalWork, plan_batches, train_cohort


class Strategy:
    """Base class; FedAvg-like defaults for everything but :meth:`select` and :meth:`aggregate`."""

    modes: ClassVar[frozenset[str]] = frozenset()
    personalized: bool = False  # each device evaluates its own model (may be set per instance)
    has_global_model: bool = True  # the global state is a whole model worth a test accuracy
    # strategies with a reform_clock: each device's group, -1 = not placed (the simulator
    # reads it after every re-forming)
    membership: np.ndarray = np.zeros(0, dtype=np.int64)
    uses_d2d: bool = False  # its protocols have device-to-device legs (needs channel.d2d)
    # it aggregates at each cell's edge and declares its own backhaul legs (needs cells); other
    # strategies in a multi-cell network have the edges relay every update to the cloud
    edge_aggregation: bool = False
    bits_per_param: int = 32
    # set by the simulator: counts the model's training FLOPs per sample (forward + backward)
    count_model_flops: Callable[[], float] | None = None
    _numpy_for: Callable[..., np.random.Generator] | None = None
    _torch_for: Callable[..., torch.Generator] | None = None

    @classmethod
    def build_model(
        cls, base: nn.Module, *, config, generator: torch.Generator, model_config=None
    ) -> nn.Module:
        """The model this strategy trains, built from the scenario's ``base`` model and a seeded
        ``generator`` (e.g. low-rank factors or adaptors around it); ``config`` is the strategy
        section, ``model_config`` the model section. Raises ValueError naming the field for a
        model it cannot build. Default: ``base``."""
        return base

    def bind_streams(
        self,
        numpy_for: Callable[..., np.random.Generator],
        torch_for: Callable[..., torch.Generator],
    ) -> None:
        """Called by the simulator: the strategy's own random streams (see :meth:`rng`)."""
        self._numpy_for, self._torch_for = numpy_for, torch_for

    def rng(self, *key) -> np.random.Generator:
        """A numpy generator keyed by purpose, independent of every other stream of the run."""
        if self._numpy_for is None:
            raise RuntimeError("strategy streams are bound by the simulator before the run")
        return self._numpy_for(*key)

    def torch_rng(self, *key) -> torch.Generator:
        """A torch generator keyed by purpose (see :meth:`rng`)."""
        if self._torch_for is None:
            raise RuntimeError("strategy streams are bound by the simulator before the run")
        return self._torch_for(*key)

    def select(
        self, *, round_idx: int, available_ids: Sequence[int], rng: np.random.Generator
    ) -> list[int]:
        """Device ids for this round's cohort, sorted, drawn from ``available_ids``."""
        raise NotImplementedError

    def model_bits(self, global_state: ModelState) -> int:
        """Bits of the whole model at ``bits_per_param`` (every tensor entry is sent)."""
        return state_bits(global_state, self.bits_per_param)

    def round_protocol(self, *, global_state: ModelState, cohort: np.ndarray) -> RoundProtocol:
        """The legs and barriers of a round for ``cohort`` (sorted device ids). Default: the
        whole model down, local training, the whole model up."""
        bits = self.model_bits(global_state)
        cached = self.__dict__.get("_three_leg")
        if cached is None or cached[0] != bits:  # rebuilt only when the model's size changes
            cached = self._three_leg = (bits, three_leg(bits, bits))
        return cached[1]

    def uplink_bits(self, *, global_state: ModelState, rho: np.ndarray) -> np.ndarray:
        """Bits each device sends on a ``prunable`` uplink leg at pruning ratios ``rho`` [n]."""
        return np.full(len(rho), self.model_bits(global_state))

    def flops_share(self, flops_per_sample: float) -> float:
        """A compute leg's ``cycle_share`` from the FLOPs per sample it runs, relative to a full
        training step of the model (forward + backward, counted by the simulator)."""
        if self.count_model_flops is None:
            raise RuntimeError("the simulator sets count_model_flops before the run")
        return float(flops_per_sample / self.count_model_flops())

    def reform_clock(self) -> tuple[int | None, float | None] | None:
        """Strategies whose devices form groups that re-form (coalitions): (every_rounds,
        every_s), one of them set; the simulator then runs the re-forming clock and calls
        :meth:`begin_round` and ``reform``. Default: None (nothing re-forms)."""
        return None

    def begin_round(self, *, round_idx: int, reform: bool) -> None:
        """Called by the simulator before a round's protocol; ``reform``: the round ends in a
        re-forming. Default: nothing."""

    def assign_cells(self, cell_of: np.ndarray) -> None:
        """Multi-cell networks: each device's serving cell [N] at the start of the round
        (called before :meth:`round_protocol`). Default: nothing."""

    def reform(self, *, round_idx: int, updates: list[ClientUpdate], num_devices: int) -> None:
        """Re-form the groups (``membership``) from a re-forming round's updates (empty in
        systems-only runs). Only strategies with a :meth:`reform_clock` are asked."""
        raise NotImplementedError

    def round_metrics(self) -> dict[str, float]:
        """Metrics of the strategy's own for the version just published (e.g. ranks); they
        become columns of the metrics table. Default: none."""
        return {}

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
        return updates_of(result, data, device_ids, base_version)

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

    def staleness_of(self, *, version: int, update: ClientUpdate) -> int:
        """Asynchronous mode: the staleness this arrival is weighted by, in versions (called
        before :meth:`on_arrival`; the engine logs exactly this). Default: versions published
        since the update's model was dispatched, ``version - update.base_version``."""
        return version - update.base_version

    def on_arrival(
        self, *, global_state: ModelState, version: int, update: ClientUpdate, now_s: float
    ) -> ModelState | None:
        """Asynchronous mode: the new global state after one arrival, or None to keep the
        current one (no new version). Staleness is :meth:`staleness_of`."""
        raise NotImplementedError


def updates_of(
    result: CohortResult, data: FederatedData, device_ids: list[int], base_version: int
) -> list[ClientUpdate]:
    """One update per device from a cohort's training: its slice of the stacked state, its
    example count and its loss reports (``train_loss``, ``train_loss_sq``: the mean of its
    per-sample squared losses, which loss-aware selection reads)."""
    losses = result.train_loss.tolist()
    squares = (
        [v * v for v in losses] if result.train_loss_sq is None else result.train_loss_sq.tolist()
    )
    return [
        ClientUpdate(
            device_id=d,
            base_version=base_version,
            state={k: v[i] for k, v in result.stacked_state.items()},
            num_examples=len(data.client_indices[d]),
            metrics={"train_loss": losses[i], "train_loss_sq": squares[i]},
        )
        for i, d in enumerate(device_ids)
    ]


def stack(states: Sequence[ModelState]) -> ModelState:
    return {k: torch.stack([s[k] for s in states]) for k in states[0]}
