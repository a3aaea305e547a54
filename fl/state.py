"""What flows between server and devices: model states, client updates, failures."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

ModelState = dict[str, torch.Tensor]
"""A model's parameters by name (a ``state_dict`` of detached tensors)."""


def state_bits(state: ModelState, bits_per_param: int = 32) -> int:
    """Bits to send ``state``: every tensor entry at ``bits_per_param`` bits."""
    return bits_per_param * sum(int(t.numel()) for t in state.values())


@dataclass(frozen=True)
class ClientUpdate:
    """One device's result of local training.

    ``state`` holds the device's new parameters; ``base_version`` is the global version it
    started from; ``metrics`` carries e.g. ``train_loss``.
    """

    device_id: int
    base_version: int
    state: ModelState
    num_examples: int
    metrics: dict = field(default_factory=dict)
    masks: ModelState | None = None  # keep-masks of a pruned update (True = entry sent)
    start_state: ModelState | None = None  # the model training started from (async deltas)


@dataclass(frozen=True)
class Failure:
    """A device that did not deliver: ``reason`` is "deadline", "offline" or "unreachable"."""

    device_id: int
    reason: str
    at_s: float
