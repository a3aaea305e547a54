"""Training FLOPs per sample of a model, counted by torch's own FLOP counter.

Drives ``devices.cycles_per_sample: auto``: compute time then follows the architecture a
strategy really trains (a low-rank or adaptor model costs what it runs). Counted once per run
on a copy of the model (so buffers such as BatchNorm statistics are untouched) and a batch of
two samples, halved: forward plus backward (gradients of every parameter; the input needs
none), as ``torch.utils.flop_counter.FlopCounterMode`` counts them (matrix products and
convolutions, 2 FLOPs per multiply-add; element-wise work is not counted).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def training_flops_per_sample(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Forward + backward FLOPs for one sample of shape ``input_shape``."""
    probe = copy.deepcopy(model).cpu()  # FLOPs do not depend on where the model lives
    x = torch.zeros(2, *input_shape)  # two: BatchNorm cannot train on a single value
    counter = FlopCounterMode(display=False)
    with counter:
        probe(x).float().sum().backward()
    return counter.get_total_flops() / 2.0
