"""Test accuracy and loss of a model state on a held-out split."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from fl.state import ModelState


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float


def evaluate(model: nn.Module, state: ModelState, x: torch.Tensor, y: torch.Tensor) -> Evaluation:
    """Accuracy (fraction correct) and mean cross-entropy of ``state`` on (x, y)."""
    with torch.no_grad():
        logits = functional_call(model, state, (x,))
        loss = nn.functional.cross_entropy(logits, y)
        accuracy = (logits.argmax(dim=1) == y).float().mean()
    return Evaluation(float(accuracy), float(loss))


def evaluate_per_device(
    model: nn.Module,
    stacked_state: ModelState,
    x: torch.Tensor,
    y: torch.Tensor,
    index_lists: list,
) -> torch.Tensor:
    """Accuracy of device k's model (slice k of ``stacked_state``) on its own examples
    ``index_lists[k]`` (indices into x, y), for all devices in one batched call.

    Returns
    -------
    accuracy : Tensor [C] (nan for a device with no examples)
    """
    c = len(index_lists)
    width = max((len(ix) for ix in index_lists), default=0)
    index = torch.zeros((c, max(width, 1)), dtype=torch.long)
    mask = torch.zeros((c, max(width, 1)))
    for k, ix in enumerate(index_lists):
        index[k, : len(ix)] = torch.as_tensor(ix, dtype=torch.long)
        mask[k, : len(ix)] = 1.0
    forward = vmap(lambda p, xb: functional_call(model, p, (xb,)))
    with torch.no_grad():
        correct = (forward(stacked_state, x[index]).argmax(dim=-1) == y[index]).float()
    counts = mask.sum(dim=1)
    return torch.where(counts > 0, (correct * mask).sum(dim=1) / counts.clamp(min=1), torch.nan)
