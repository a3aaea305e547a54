"""Test accuracy and loss of a model state on a held-out split."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

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
