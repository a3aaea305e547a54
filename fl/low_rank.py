"""Low-rank linear layers ``W = U S V^T`` and the FeDLRT basis algebra (papers/fedlrt.md).

A :class:`LowRankLinear` holds ``U`` [n_out, r] and ``V`` [n_in, r] with orthonormal columns,
a full coefficient matrix ``S`` [r, r] and a bias; its forward is ``((x V) S^T) U^T + b``, so
``W`` is never assembled. Ranks change from round to round: the tensors a forward uses are the
ones passed to it (``functional_call``), whatever their current rank.

Server algebra (notes section 3, steps 3, 5 and 9):

* :func:`augment`: ``U_hat = [U | qr((I - U U^T) G_U)]``, the first r columns exactly U
  (projected twice against rank-deficient gradients, notes pitfall 3);
* :func:`augmented_start`: ``S~0 = [[S, 0], [0, 0]]``, so ``U_hat S~0 V_hat^T = U S V^T``;
* :func:`truncate`: SVD of the aggregated ``S~*``, new rank the smallest j with
  ``||sigma_{j+1:}|| < tau ||sigma||``, clamped to ``[r_min, r_max]``.
"""

from __future__ import annotations

import torch
from torch import nn


class LowRankLinear(nn.Module):
    """``y = x V S^T U^T + b``: a linear layer kept as ``U S V^T`` (never assembled)."""

    def __init__(self, u: torch.Tensor, s: torch.Tensor, v: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.U = nn.Parameter(u)
        self.S = nn.Parameter(s)
        self.V = nn.Parameter(v)
        self.bias = nn.Parameter(bias)

    @property
    def shape(self) -> tuple[int, int]:
        """(n_out, n_in) of the matrix it stands for."""
        return int(self.U.shape[0]), int(self.V.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x @ self.V) @ self.S.T) @ self.U.T + self.bias


def low_rank_from(linear: nn.Linear, rank: int, generator: torch.Generator) -> LowRankLinear:
    """A rank-``rank`` layer in place of ``linear``: ``U``, ``V`` random orthonormal (QR of
    Gaussians from ``generator``), ``S`` diagonal with the dense layer's top singular values
    (so the initial scale matches the dense initialisation), the dense bias kept."""
    n, m = linear.weight.shape
    with torch.no_grad():
        sigma = torch.linalg.svdvals(linear.weight.double())[:rank].float()
        u = torch.linalg.qr(torch.randn(n, rank, generator=generator)).Q
        v = torch.linalg.qr(torch.randn(m, rank, generator=generator)).Q
    return LowRankLinear(
        u.contiguous(), torch.diag(sigma), v.contiguous(), linear.bias.detach().clone()
    )


def _orth_complement(basis: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns spanning the part of ``grad`` outside span(``basis``)."""
    g = grad.double()
    b = basis.double()
    for _ in range(2):  # twice: one projection leaves O(eps * ||G||) inside the span
        g = g - b @ (b.T @ g)
    q = torch.linalg.qr(g).Q
    # and the QR basis once more against the old one (it came from a projected matrix)
    q = q - b @ (b.T @ q)
    return torch.linalg.qr(q).Q.to(basis.dtype)


def augment(u: torch.Tensor, grad_u: torch.Tensor) -> torch.Tensor:
    """``[U | U_bar]`` [n, 2r]: U itself first, then new directions from the gradient."""
    return torch.cat([u, _orth_complement(u, grad_u)], dim=1)


def augmented_start(s: torch.Tensor) -> torch.Tensor:
    """``[[S, 0], [0, 0]]`` [2r, 2r]: the coefficient in the augmented bases."""
    r = s.shape[0]
    out = torch.zeros(2 * r, 2 * r, dtype=s.dtype, device=s.device)
    out[:r, :r] = s
    return out


def new_rank(sigma: torch.Tensor, tau: float, r_min: int, r_max: int) -> int:
    """Smallest j with ``||sigma[j:]||_2 < tau ||sigma||_2``, clamped to [r_min, r_max]."""
    sq = sigma.double() ** 2
    tail = torch.sqrt(torch.flip(torch.cumsum(torch.flip(sq, [0]), 0), [0]))  # ||sigma[j:]||
    limit = tau * float(torch.sqrt(sq.sum()))
    below = torch.nonzero(tail < limit).flatten()
    j = int(below[0]) if below.numel() else int(sigma.numel())
    return max(r_min, min(r_max, j, int(sigma.numel())))


def truncate(
    u_hat: torch.Tensor,
    s_star: torch.Tensor,
    v_hat: torch.Tensor,
    *,
    tau: float,
    r_min: int,
    r_max: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """(U, S, V, tail) after truncating ``U_hat S~* V_hat^T``; ``tail`` is the dropped share
    ``||sigma[r1:]|| / ||sigma||`` (the singular-value tail)."""
    p, sigma, qt = torch.linalg.svd(s_star.double())
    r1 = new_rank(sigma, tau, r_min, r_max)
    total = float(torch.linalg.vector_norm(sigma))
    tail = float(torch.linalg.vector_norm(sigma[r1:])) / total if total > 0 else 0.0
    dtype = s_star.dtype
    u = (u_hat.double() @ p[:, :r1]).to(dtype)
    v = (v_hat.double() @ qt.T[:, :r1]).to(dtype)
    return u, torch.diag(sigma[:r1]).to(dtype), v, tail
