"""The zero-virtual-time learning step of a synchronous round: train, aggregate, evaluate.

Training runs only when its result is needed (at aggregation) and only for devices that
delivered, so a device that dropped out never costs CPU; all of them are trained in one batched
call because they start from the same global model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fl.evaluation import evaluate
from fl.state import ClientUpdate, Failure, ModelState
from fl.training import plan_batches, train_cohort
from simulator.world import World


@dataclass(frozen=True)
class LearningStep:
    new_state: ModelState
    train_loss: float  # mean over delivering devices (nan if none)


def train_and_aggregate(
    world: World, *, round_idx: int, version: int, delivered: list[int], failures: list[Failure]
) -> LearningStep:
    """Train the delivering devices from the current global model and aggregate them."""
    data = world.data
    assert data is not None, "training needs data; systems-only runs never call this"
    updates: list[ClientUpdate] = []
    train_loss = math.nan
    if delivered:
        plan = plan_batches(
            [data.client_indices[d] for d in delivered],
            world.work,
            [world.streams.numpy("train", d, round_idx) for d in delivered],
        )
        result = train_cohort(
            world.model, world.global_state, data.train_x, data.train_y, plan, world.work.lr
        )
        losses = result.train_loss.tolist()
        train_loss = float(torch.tensor(losses).mean())
        updates = [
            ClientUpdate(
                device_id=d,
                base_version=version,
                state={k: v[i] for k, v in result.stacked_state.items()},
                num_examples=int(world.num_examples[d]),
                metrics={"train_loss": losses[i]},
            )
            for i, d in enumerate(delivered)
        ]
    new_state = world.strategy.aggregate(
        round_idx=round_idx, global_state=world.global_state, updates=updates, failures=failures
    )
    return LearningStep(new_state, train_loss)


def evaluate_global(world: World) -> tuple[float, float]:
    """(accuracy, loss) of the current global model on the held-out test split."""
    assert world.data is not None
    ev = evaluate(world.model, world.global_state, world.data.test_x, world.data.test_y)
    return ev.accuracy, ev.loss


def is_diverged(state: ModelState, *losses: float) -> bool:
    """True when any parameter or any given loss is nan/inf (the model blew up).

    Pass only losses that were actually computed (a round with no deliveries has none).
    """
    if any(not math.isfinite(v) for v in losses):
        return True
    return not all(bool(torch.isfinite(t).all()) for t in state.values())
