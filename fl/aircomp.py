"""What over-the-air aggregation does to a round's updates (channels/aircomp.py has the
radio side). Notes: papers/hierarchical_aircomp.md.

Each device k sends its update ``Delta_k = w_k - w`` normalised with a scale common to the
round (our choice, the usual practice: mean ``mu`` and scale ``s`` sent digitally, a few
floats): ``x_k = (Delta_k - mu) / s`` with ``mu`` the mean of the devices' mean entries and
``s`` the largest per-device standard deviation. Devices pre-scale by ``a_k = n_k / mean(n)``
so that the received sum is the example-weighted sum FedAvg uses. The server estimates

    x_hat = (1 / |S|) sum_k a_k r_k x_k + z / (|S| sqrt(rho0)),  z ~ N(0, sigma^2) per entry,

with ``r_k = 1`` under perfect alignment, or ``r_k = h_k / h_hat_k = 1 / (1 + e eps_k)``
(eps_k ~ N(0, 1)) when device k inverts an estimate with relative error e. It is returned
as updates whose example-weighted average is ``w + s x_hat + mu`` (every update carries the
same noise), so FedAvg's own aggregation applies it. The MSE is measured on the normalised
entries, ``mean((x_hat - x_bar)^2)``, next to its formula given the round's misalignment,
``sigma^2 / (|S|^2 rho0) + mean((sum_k a_k (r_k - 1) x_k / |S|)^2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from fl.state import ClientUpdate, ModelState


@dataclass(frozen=True)
class OverTheAir:
    updates: list[ClientUpdate]
    mse: float  # measured per-entry MSE of the normalised average
    mse_formula: float


def over_the_air(
    updates: list[ClientUpdate],
    global_state: ModelState,
    *,
    rho0_w: float,
    noise_w: float,
    estimation_error: float | None,
    generator: torch.Generator,
) -> OverTheAir:
    """Distort ``updates`` (the transmitting set that delivered) as one AirComp sum would."""
    useful = [u for u in updates if u.num_examples > 0]
    if not useful:
        return OverTheAir(updates, math.nan, math.nan)
    names = [k for k, v in global_state.items() if v.is_floating_point()]
    base = torch.cat([global_state[k].double().reshape(-1) for k in names])
    delta = torch.stack(
        [torch.cat([u.state[k].double().reshape(-1) for k in names]) - base for u in useful]
    )  # [S, d]
    count = len(useful)
    mu = float(delta.mean())
    scale = float(delta.std(dim=1, correction=0).max()) or 1.0
    x = (delta - mu) / scale
    n = torch.tensor([float(u.num_examples) for u in useful], dtype=torch.float64)
    a = (n / n.mean()).reshape(-1, 1)
    if estimation_error:
        eps = torch.randn(count, generator=generator, dtype=torch.float64).to(x.device)
        r = (1.0 / (1.0 + estimation_error * eps)).reshape(-1, 1)
    else:
        r = torch.ones(count, 1, dtype=torch.float64)
    z = torch.randn(x.shape[1], generator=generator, dtype=torch.float64).to(x.device)
    z = z * math.sqrt(noise_w)
    noise = z / (count * math.sqrt(rho0_w))
    clean = (a * x).sum(dim=0) / count
    received = (a * r * x).sum(dim=0) / count + noise
    misaligned = ((a * (r - 1.0) * x).sum(dim=0) / count).pow(2).mean()
    mse = float((received - clean).pow(2).mean())
    formula = noise_w / (count**2 * rho0_w) + float(misaligned)
    # per device: w + s (r_k x_k + noise) + mu; their weighted average is w + s x_hat + mu
    sent = base + scale * (r * x + noise) + mu
    out = []
    for i, u in enumerate(useful):
        state = dict(u.state)
        offset = 0
        for k in names:
            size = global_state[k].numel()
            flat = sent[i, offset : offset + size]
            state[k] = flat.reshape(global_state[k].shape).to(global_state[k].dtype)
            offset += size
        out.append(replace(u, state=state))
    others = [u for u in updates if u.num_examples == 0]
    return OverTheAir(out + others, mse, formula)
