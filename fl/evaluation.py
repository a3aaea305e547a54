"""Test accuracy and loss of a model state on a held-out split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from fl.state import ModelState


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float
    group_accuracy: tuple[float, ...] = ()  # per true group, when ``groups`` were given


def evaluate(
    model: nn.Module,
    state: ModelState,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: np.ndarray | None = None,
) -> Evaluation:
    """Accuracy (fraction correct) and mean cross-entropy of ``state`` on (x, y); with
    ``groups`` ([N] int, the true group of each example) also the accuracy per group
    0..max(groups) (nan for a group with no examples)."""
    with torch.no_grad():
        logits = functional_call(model, state, (x,))
        loss = nn.functional.cross_entropy(logits, y)
        correct = (logits.argmax(dim=1) == y).cpu().numpy()
    per_group: tuple[float, ...] = ()
    if groups is not None:
        count = np.bincount(groups, minlength=int(groups.max()) + 1)
        hits = np.bincount(groups, weights=correct, minlength=count.size)
        pairs = zip(hits, count, strict=True)
        per_group = tuple(float(h / c) if c else float("nan") for h, c in pairs)
    return Evaluation(float(correct.mean()), float(loss), per_group)


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
    accuracy : Tensor [C] on the CPU (nan for a device with no examples)
    """
    c = len(index_lists)
    width = max((len(ix) for ix in index_lists), default=0)
    index_np = np.zeros((c, max(width, 1)), dtype=np.int64)
    mask_np = np.zeros((c, max(width, 1)), dtype=np.float32)
    for k, ix in enumerate(index_lists):
        index_np[k, : len(ix)] = ix
        mask_np[k, : len(ix)] = 1.0
    index = torch.from_numpy(index_np).to(x.device)
    mask = torch.from_numpy(mask_np).to(x.device)
    forward = vmap(lambda p, xb: functional_call(model, p, (xb,)))
    with torch.no_grad():
        correct = (forward(stacked_state, x[index]).argmax(dim=-1) == y[index]).float()
    counts = mask.sum(dim=1)
    accuracy = (correct * mask).sum(dim=1) / counts.clamp(min=1)
    return torch.where(counts > 0, accuracy, torch.nan).cpu()
