"""Mixtures of low-rank adaptors (FLoRAL, papers/floral.md section 2).

Every ``nn.Linear`` of the model (the classifier included) becomes a :class:`MixtureLinear`:
the base ``W, b`` plus C adaptors ``(A_c [r, d_in], B_c [d_out, r], beta_c [d_out])``; a
device's output is ``W x + b + sum_c max(pi_c, 0.01) (B_c A_c x + beta_c)`` with ``pi`` its
router's mixture (the floor applied without renormalising, as in the reference code). One
router per device, shared by all layers: :class:`MixtureModel` holds its logits (``router``)
and passes ``pi = softmax(router + noise)`` to every layer (``noise``: a training-time draw,
none at evaluation). ``A_c`` starts uniform in ``+-sqrt(6 / d_in)``, ``B_c`` and ``beta_c`` at
zero, so every personalised model starts equal to the base.
"""

from __future__ import annotations

import math

import torch
from torch import nn

FLOOR = 0.01  # the smallest weight an adaptor gets (reference code)


def adaptor_rank(d_in: int, d_out: int, rho: float) -> int:
    """``max(1, floor(rho d_in d_out / (d_in + d_out)))``: one adaptor ~ rho x the layer."""
    return max(1, math.floor(rho * d_in * d_out / (d_in + d_out)))


class MixtureLinear(nn.Module):
    """A linear layer with C low-rank adaptors mixed by a router's ``pi`` [C]."""

    def __init__(self, linear: nn.Linear, adaptors: int, rank: int, generator: torch.Generator):
        super().__init__()
        d_out, d_in = linear.weight.shape
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = nn.Parameter(linear.bias.detach().clone())
        bound = math.sqrt(6.0 / d_in)
        a = (torch.rand(adaptors, rank, d_in, generator=generator) * 2 - 1) * bound
        self.A = nn.Parameter(a)
        self.B = nn.Parameter(torch.zeros(adaptors, d_out, rank))
        self.beta = nn.Parameter(torch.zeros(adaptors, d_out))

    def forward(self, x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        base = x @ self.weight.T + self.bias
        h = torch.einsum("...m,crm->...cr", x, self.A)
        z = torch.einsum("...cr,cnr->...cn", h, self.B) + self.beta
        return base + torch.einsum("c,...cn->...n", torch.clamp(pi, min=FLOOR), z)


class MixtureModel(nn.Module):
    """An MLP of :class:`MixtureLinear` layers and one router (logits [C]) for all of them."""

    def __init__(self, layers: nn.Sequential, adaptors: int):
        super().__init__()
        self.layers = layers
        self.router = nn.Parameter(torch.zeros(adaptors))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.router if noise is None else self.router + noise
        pi = torch.softmax(logits, dim=-1)
        for layer in self.layers:
            x = layer(x, pi) if isinstance(layer, MixtureLinear) else layer(x)
        return x


def mixture_of(model: nn.Module, *, adaptors: int, rho: float, generator) -> MixtureModel:
    """The MLP ``model`` (Flatten, Linear, ReLU, ...) with every Linear given C adaptors.
    Raises ValueError for models with other layers (conv adaptors are not built)."""
    if not isinstance(model, nn.Sequential) or any(
        isinstance(m, nn.Conv2d) for m in model.modules()
    ):
        raise ValueError("model.kind: mlp (FLoRAL's conv adaptors are not built)")
    layers: list[nn.Module] = []
    for m in model:
        if isinstance(m, nn.Linear):
            d_out, d_in = m.weight.shape
            layers.append(MixtureLinear(m, adaptors, adaptor_rank(d_in, d_out, rho), generator))
        else:
            layers.append(m)
    return MixtureModel(nn.Sequential(*layers), adaptors)


def precondition(name: str, grad: torch.Tensor, params: dict) -> torch.Tensor:
    """The reference trainer's preconditioned adaptor gradients (notes section 5), batched
    over clients and adaptors: ``grad_A <- (B^T B + eps I)^-1 grad_A`` and
    ``grad_B <- grad_B (A A^T + eps I)^-1``, eps = 1e-5 (solves, no inverses)."""
    prefix, _, leaf = name.rpartition(".")
    if leaf not in ("A", "B"):
        return grad
    a, b = params[f"{prefix}.A"], params[f"{prefix}.B"]  # [..., C, r, m], [..., C, n, r]
    eye = torch.eye(a.shape[-2], dtype=grad.dtype, device=grad.device)
    if leaf == "A":
        gram = b.transpose(-1, -2) @ b + 1e-5 * eye  # [..., C, r, r]
        return torch.linalg.solve(gram, grad)
    gram = a @ a.transpose(-1, -2) + 1e-5 * eye  # [..., C, r, r], symmetric
    return torch.linalg.solve(gram, grad.transpose(-1, -2)).transpose(-1, -2)
