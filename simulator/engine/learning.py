"""The zero-virtual-time learning step of a synchronous round: train, aggregate, evaluate.

Training runs only when its result is needed (at aggregation) and only for devices that
delivered, so a device that dropped out never costs CPU; all of them are trained in one batched
call because they start from the same global model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fl.evaluation import evaluate, evaluate_per_device
from fl.state import ClientUpdate, Failure, ModelState
from simulator.engine.world import World


@dataclass(frozen=True)
class LearningStep:
    new_state: ModelState
    train_loss: float  # mean over delivering devices (nan if none)
    reports: dict[int, dict]  # each trained device's metrics (losses), by device id


def train_and_aggregate(
    world: World,
    *,
    round_idx: int,
    version: int,
    delivered: list[int],
    rho: np.ndarray,
    failures: list[Failure],
    reform: bool = False,
    transform: Callable[[list[ClientUpdate], ModelState], list[ClientUpdate]] | None = None,
) -> LearningStep:
    """Train the delivering devices (the strategy says how) and aggregate them; in a
    re-forming round the strategy first re-forms its groups from the fresh updates.
    ``transform``: what the channel does to the updates on their way (an over-the-air sum)."""
    data = world.data
    assert data is not None, "training needs data; systems-only runs never call this"
    updates: list[ClientUpdate] = []
    train_loss = math.nan
    if delivered:
        updates = world.strategy.local_updates(
            model=world.model,
            data=data,
            global_state=world.global_state,
            device_ids=delivered,
            rho=np.asarray(rho, dtype=float),
            base_version=version,
            round_idx=round_idx,
            work=world.work,
            rngs=[world.streams.numpy("train", d, round_idx) for d in delivered],
        )
        train_loss = float(np.mean([u.metrics["train_loss"] for u in updates]))
    if reform:
        world.strategy.reform(round_idx=round_idx, updates=updates, num_devices=world.num_devices)
    if transform is not None:
        updates = transform(updates, world.global_state)
    new_state = world.strategy.aggregate(
        round_idx=round_idx, global_state=world.global_state, updates=updates, failures=failures
    )
    return LearningStep(new_state, train_loss, {u.device_id: u.metrics for u in updates})


def evaluate_global(world: World) -> dict:
    """Accuracy and loss of the current global model on the held-out test split, and under a
    clustered partition its accuracy on each true group's copy (``accuracy_group<g>``)."""
    data = world.data
    assert data is not None
    ev = evaluate(world.model, world.global_state, data.test_x, data.test_y, data.test_groups)
    row = {"accuracy": ev.accuracy, "loss": ev.loss}
    row.update({f"accuracy_group{g}": a for g, a in enumerate(ev.group_accuracy)})
    return row


PERSONAL_NAN = {
    "personal_accuracy_mean": math.nan,
    "personal_accuracy_p10": math.nan,
    "personal_accuracy_p50": math.nan,
    "personal_accuracy_p90": math.nan,
}


def evaluation_nan(world: World) -> dict:
    """The evaluation columns of a metrics row, all nan (filled on evaluated versions): the
    personalised-accuracy columns, and per true group (clustered partitions) the global and
    personalised accuracy of that group."""
    row = dict(PERSONAL_NAN)
    groups = 0 if world.data is None else world.data.num_groups
    for g in range(groups):
        row[f"accuracy_group{g}"] = math.nan
        if world.data is not None and world.data.client_test_indices is not None:
            row[f"personal_accuracy_group{g}"] = math.nan
    return row


def personal_accuracy(world: World) -> dict:
    """Each device's accuracy on its own held-out data with the model it runs (global model
    for FedAvg, global part + own head when personalised): mean and 10/50/90th percentiles,
    and under a clustered partition the mean over each true group's devices
    (``personal_accuracy_group<g>``). Empty when the data has no local test splits."""
    data = world.data
    if data is None or data.client_test_indices is None:
        return {}
    ids = list(range(world.num_devices))
    states = world.strategy.device_states(global_state=world.global_state, device_ids=ids)
    acc = evaluate_per_device(
        world.model, states, data.train_x, data.train_y, data.client_test_indices
    ).numpy()
    p10, p50, p90 = np.nanpercentile(acc, [10, 50, 90])
    row = {
        "personal_accuracy_mean": float(np.nanmean(acc)),
        "personal_accuracy_p10": float(p10),
        "personal_accuracy_p50": float(p50),
        "personal_accuracy_p90": float(p90),
    }
    for g in range(data.num_groups):
        members = acc[data.device_groups == g]
        has = members[~np.isnan(members)]
        row[f"personal_accuracy_group{g}"] = float(has.mean()) if has.size else math.nan
    return row


def is_diverged(state: ModelState, *losses: float) -> bool:
    """True when any parameter or any given loss is nan/inf (the model blew up).

    Pass only losses that were actually computed (a round with no deliveries has none).
    """
    if any(not math.isfinite(v) for v in losses):
        return True
    return not all(bool(torch.isfinite(t).all()) for t in state.values())
