"""Magnitude pruning of a model's shared (global) part and aggregation of pruned updates.

Building blocks for adaptive pruning + partial personalisation
(papers/pruning_personalization_kkt.md, sections 2.2-2.3):

* :func:`magnitude_masks` -- per device, keep the ``floor((1 - rho_k) * numel)``
  largest-magnitude entries of each global tensor. Floor, so a device never sends more than the
  bandwidth allocator budgeted and its deadline holds exactly. Layer-wise, so a small tensor such
  as a bias is never wiped out by a global threshold (the notes leave the criterion open; this
  is our choice). One sort per tensor serves the whole cohort: all prune the same broadcast model.
* :func:`aggregate_kept_entries` -- the notes' entry-wise rule: each entry is the weighted mean
  over the devices that kept it; entries nobody kept keep their old value. ``zero_filled=True``
  is the simpler alternative (weighted mean of the zero-filled vectors).
* :func:`sent_bits` -- uplink bits counted from the entries actually kept (mask overhead
  optional: one bit per entry for a bitmap).
"""

from __future__ import annotations

import torch

from fl.state import ModelState


def magnitude_masks(global_state: ModelState, rho: torch.Tensor) -> dict[str, torch.Tensor]:
    """Boolean keep-masks [C, *shape] per tensor for C devices with pruning ratios ``rho`` [C].

    Ties in magnitude are broken by position (stable sort), so masks are deterministic.
    """
    masks = {}
    for name, tensor in global_state.items():
        rho = torch.as_tensor(rho, dtype=torch.float64, device=tensor.device)
        flat = tensor.detach().reshape(-1).abs()
        order = torch.sort(flat, descending=True, stable=True).indices
        rank = torch.empty_like(order)
        rank[order] = torch.arange(flat.numel(), device=flat.device)
        # floor, with a relative guard so 0.75 * 4 is 3, not 2.999...
        keep = torch.floor((1.0 - rho) * flat.numel() * (1 + 1e-12)).long()  # [C]
        masks[name] = (rank.unsqueeze(0) < keep.unsqueeze(1)).reshape(-1, *tensor.shape)
    return masks


def aggregate_kept_entries(
    global_state: ModelState,
    stacked: ModelState,
    masks: dict[str, torch.Tensor],
    weights: torch.Tensor,
    *,
    zero_filled: bool = False,
) -> ModelState:
    """New global tensors from C pruned updates.

    Parameters
    ----------
    global_state : current global tensors (kept where no device kept an entry)
    stacked : the devices' trained tensors [C, *shape]
    masks : keep-masks [C, *shape] (bool)
    weights : [C] aggregation weights (e.g. local example counts), non-negative
    zero_filled : average the zero-filled tensors instead of only the devices that kept an entry
    """
    out = {}
    for name, old in global_state.items():
        w = torch.as_tensor(weights, dtype=torch.float64, device=old.device)
        m = masks[name].to(torch.float64)
        wm = w.reshape(-1, *([1] * old.dim())) * m
        total = (wm * stacked[name].to(torch.float64)).sum(dim=0)
        if zero_filled:
            new = total / w.sum()
        else:
            support = wm.sum(dim=0)
            new = torch.where(support > 0, total / support.clamp(min=1e-300), old.double())
        out[name] = new.to(old.dtype)
    return out


def sent_bits(
    masks: dict[str, torch.Tensor], bits_per_param: int = 32, *, bitmap: bool = False
) -> torch.Tensor:
    """Uplink bits per device [C]: kept entries x ``bits_per_param`` (+ 1 bit/entry bitmap)."""
    kept = torch.stack([m.reshape(m.shape[0], -1).sum(dim=1) for m in masks.values()]).sum(0)
    total = sum(m[0].numel() for m in masks.values())
    return kept * bits_per_param + (total if bitmap else 0)
