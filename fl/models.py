"""Small models for edge devices: an MLP and a two-block CNN. No batch norm or dropout, so a
model is a pure function of its parameters (what batched functional training needs)."""

from __future__ import annotations

import math

import torch
from torch import nn

from fl.config import CNNConfig, MLPConfig, ModelConfig


def mlp(input_shape: tuple[int, ...], hidden: list[int], num_classes: int) -> nn.Module:
    """Flatten -> [Linear -> ReLU] * len(hidden) -> Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def small_cnn(input_shape: tuple[int, ...], channels: tuple[int, int], num_classes: int):
    """Two conv(3x3, same padding)-ReLU-maxpool(2) blocks, then a linear head.

    input_shape is (C, H, W).
    """
    if len(input_shape) != 3:
        raise ValueError(f"a CNN needs image inputs (C, H, W), got shape {input_shape}")
    c, h, w = input_shape
    c1, c2 = channels
    features = nn.Sequential(
        nn.Conv2d(c, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    flat = c2 * (h // 4) * (w // 4)
    return nn.Sequential(features, nn.Flatten(), nn.Linear(flat, num_classes))


def build_model(
    cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, generator: torch.Generator
) -> nn.Module:
    """Build and initialise a model deterministically from ``generator``."""
    if isinstance(cfg, MLPConfig):
        model = mlp(input_shape, list(cfg.hidden), num_classes)
    elif isinstance(cfg, CNNConfig):
        model = small_cnn(input_shape, cfg.channels, num_classes)
    else:
        raise TypeError(f"unknown model config {cfg!r}")
    # PyTorch's default init draws from the global RNG; redo it from our own generator
    # (same laws: Kaiming-uniform weights, fan-in uniform biases).
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)
    return model
