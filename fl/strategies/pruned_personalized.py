"""Adaptive model pruning + partial personalisation: X. Liu, T. Ratnarajah, M. Sellathurai,
Y. C. Eldar, "Adaptive Model Pruning and Personalization for Federated Learning over Wireless
Networks", arXiv:2309.01816 / IEEE TSP 2024. Implementation notes:
papers/pruning_personalization_kkt.md (sections 2-3; most details there are [inferred]).

* The model splits into a shared global part (every layer but the last Linear) and a personal
  head (the last Linear) that stays on the device and is never uploaded.
* Each round device k magnitude-prunes the broadcast global part at its ratio rho_k (chosen by
  the joint allocator, or fixed), runs ``personal_steps`` SGD steps on its head with the global
  part frozen, then ``global_steps`` on the kept global entries with the head frozen (the notes'
  alternating, Pillutla-style update), and uploads the kept entries.
* The server averages each entry over the devices that kept it, weighted by examples; entries
  nobody kept keep their value (``zero_filled`` switches to the plain zero-filled average).
* Cost model (notes, section 3): a sample costs ``cycles_per_sample * Q_p / Q`` in a personal
  step and ``cycles_per_sample * x * Q_g / Q`` in a global step (the notes neglect the frozen
  part's forward pass); uplink ``floor(x * numel)`` entries per global tensor at 32 bits (+ a
  1-bit-per-entry bitmap with ``mask_bitmap``).

Our choices where the notes leave it open: layer-wise magnitude pruning (fl/pruning.py);
personalised accuracy = the full new global part with the device's own head.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from fl.protocol import Leg, RoundProtocol
from fl.pruning import aggregate_kept_entries, magnitude_masks
from fl.state import ClientUpdate, ModelState
from fl.strategies.base import stack
from fl.strategies.fedavg import FedAvg
from fl.training import LocalWork, plan_batches, train_cohort


def head_names(model: nn.Module) -> list[str]:
    """Parameter names of the model's last Linear layer (the personal head)."""
    last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    return [f"{last}.{p}" for p, _ in model.get_submodule(last).named_parameters()]


class PrunedPersonalized(FedAvg):
    modes: ClassVar[frozenset[str]] = frozenset({"sync"})
    personalized = True
    has_global_model = False  # the shared part alone has no head

    def __init__(
        self,
        *,
        model: nn.Module,
        initial_state: ModelState,
        num_devices: int,
        personal_steps: int,
        global_steps: int,
        rho: float | None,
        zero_filled: bool = False,
        mask_bitmap: bool = False,
        clients_per_round: int | None = None,
        fraction: float | None = None,
    ):
        super().__init__(clients_per_round=clients_per_round, fraction=fraction)
        self.personal = head_names(model)
        self.shared = [k for k in initial_state if k not in self.personal]
        self.personal_steps, self.global_steps = personal_steps, global_steps
        self.fixed_rho = rho
        self.zero_filled, self.mask_bitmap = zero_filled, mask_bitmap
        # Device-side state: every device starts from the initial head.
        self.heads = {
            k: initial_state[k].unsqueeze(0).repeat(num_devices, *[1] * initial_state[k].dim())
            for k in self.personal
        }

    def _numel(self, names, state) -> int:
        return sum(int(state[k].numel()) for k in names)

    def round_protocol(self, *, global_state, cohort):
        q_g, q_p = self._numel(self.shared, global_state), self._numel(self.personal, global_state)
        total_steps = self.personal_steps + self.global_steps
        # uplink: the bitmap (fixed) + the kept entries (exact count from uplink_bits)
        return RoundProtocol.of(
            Leg("global_down", "downlink", bits=q_g * self.bits_per_param),
            Leg(
                "train",
                "compute",
                cycle_share=self.personal_steps / total_steps * q_p / (q_g + q_p),
                prunable_share=self.global_steps / total_steps * q_g / (q_g + q_p),
            ),
            Leg(
                "kept_up",
                "uplink",
                bits=q_g if self.mask_bitmap else 0,
                prunable_bits=q_g * self.bits_per_param,
            ),
            fixed_rho=self.fixed_rho,
        )

    def uplink_bits(self, *, global_state, rho):
        x = 1.0 - np.asarray(rho)
        # floor, as the masks: never more than the allocator budgeted (guard: 0.75 * 4 is 3)
        kept = sum(np.floor(x * global_state[k].numel() * (1 + 1e-12)) for k in self.shared)
        return kept * self.bits_per_param + (
            self._numel(self.shared, global_state) if self.mask_bitmap else 0
        )

    def local_updates(
        self, *, model, data, global_state, device_ids, rho, base_version, round_idx, work, rngs
    ):
        device = data.train_x.device
        ids = torch.as_tensor(device_ids, dtype=torch.long, device=device)
        shared = {k: global_state[k] for k in self.shared}
        masks = magnitude_masks(shared, torch.as_tensor(rho))
        start = {k: shared[k].unsqueeze(0) * masks[k] for k in self.shared}
        start.update({k: self.heads[k][ids] for k in self.personal})
        indices = [data.client_indices[d] for d in device_ids]
        frozen = {k: torch.zeros(1, device=device) for k in self.personal}
        # 1. personal steps: head only (global part frozen)
        phase1 = LocalWork(work.batch_size, work.lr, steps=self.personal_steps)
        r1 = train_cohort(
            model,
            start,
            data.train_x,
            data.train_y,
            plan_batches(indices, phase1, rngs),
            work.lr,
            stacked_start=True,
            grad_masks={k: torch.zeros(1, device=device) for k in self.shared},
        )
        # 2. global steps: kept global entries only (head frozen); same generators, next draws
        phase2 = LocalWork(work.batch_size, work.lr, steps=self.global_steps)
        r2 = train_cohort(
            model,
            r1.stacked_state,
            data.train_x,
            data.train_y,
            plan_batches(indices, phase2, rngs),
            work.lr,
            stacked_start=True,
            grad_masks={**{k: masks[k] for k in self.shared}, **frozen},
        )
        for k in self.personal:  # the new heads stay on the devices
            self.heads[k][ids] = r2.stacked_state[k]
        losses = ((r1.train_loss + r2.train_loss) / 2).tolist()
        return [
            ClientUpdate(
                device_id=d,
                base_version=base_version,
                state={k: r2.stacked_state[k][i] for k in self.shared},
                num_examples=len(data.client_indices[d]),
                metrics={"train_loss": losses[i], "rho": float(rho[i])},
                masks={k: masks[k][i] for k in self.shared},
            )
            for i, d in enumerate(device_ids)
        ]

    def device_states(self, *, global_state, device_ids):
        some = next(iter(global_state.values()))
        ids = torch.as_tensor(device_ids, dtype=torch.long, device=some.device)
        c = len(device_ids)
        states = {
            k: global_state[k].unsqueeze(0).expand(c, *global_state[k].shape) for k in self.shared
        }
        states.update({k: self.heads[k][ids] for k in self.personal})
        return states

    def aggregate(self, *, round_idx, global_state, updates, failures):
        useful = sorted((u for u in updates if u.num_examples > 0), key=lambda u: u.device_id)
        if not useful:
            return global_state
        new = aggregate_kept_entries(
            {k: global_state[k] for k in self.shared},
            stack([u.state for u in useful]),
            stack([u.masks for u in useful if u.masks is not None]),
            torch.tensor([float(u.num_examples) for u in useful]),
            zero_filled=self.zero_filled,
        )
        return {**global_state, **new}


__all__ = ["PrunedPersonalized", "head_names"]
