"""Where training tensors live: ``training.device: auto | cpu | cuda``.

Everything that draws random numbers (model initialisation, mini-batch plans, strategy
streams) stays on the CPU, so a GPU run starts from the very same numbers as a CPU run and the
two differ only by floating-point reduction order (about 1e-5 on quickstart).
"""

from __future__ import annotations

import torch


class DeviceUnavailable(ValueError):
    """``training.device: cuda`` on a machine where torch sees no CUDA GPU."""


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``: ``auto`` picks CUDA when available, else the CPU.

    Raises :class:`DeviceUnavailable` for ``cuda`` without a usable GPU.
    """
    if name == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda" if available else "cpu")
    if name != "cuda":
        raise ValueError(f"unknown training device {name!r}")
    if not available:
        build = torch.version.cuda
        why = "torch was built without CUDA" if build is None else "torch sees no CUDA GPU"
        raise DeviceUnavailable(f"none: {why} (torch {torch.__version__})")
    return torch.device("cuda")
