"""FeDLRT: S. Schotthoefer and M. P. Laiu, "Federated Dynamical Low-Rank Training with Global
Loss Convergence Guarantees", arXiv:2406.17887 (2024). Notes: papers/fedlrt.md.

A round (notes section 3), as protocol legs:

1. down ``U, S, V`` and the dense parameters; clients compute basis gradients ``G_U, G_V``
   (and ``grad_S`` for the simplified correction) on ``gradient_batches`` mini-batches; up;
   barrier ``augment``.
2. The server averages them and augments ``U_hat = [U | U_bar]``, ``V_hat = [V | V_bar]``;
   down ``U_bar, V_bar``. Full variance correction: clients compute ``g_c``, the gradient of
   the 2r x 2r coefficient at ``S~0``, up; barrier ``correct``; down the average ``g``.
3. Clients take ``training.local_steps`` SGD steps on ``S~`` (bases frozen) with the
   correction ``V_c = g - g_c`` added to every gradient, and train the dense parameters;
   up ``S~_c`` and the dense parameters; publish: the server averages, takes the SVD of
   ``S~*`` and truncates (relative threshold ``tau``, ranks clamped).

Bits per message are the notes' table (section 5) at the round's ranks, times
``bits_per_param``; compute legs cost the FLOPs of the factored forward and backward
(``6 (r (n + m) + r^2)`` per sample per factored layer, ``6 n m`` for dense ones) relative to
the model as built.

Our choices where the notes leave it open ([I] in the notes): U sits on the output side
(``W`` is ``[n_out, n_in]``); the full-basis broadcast each round (not the ``P, Q, Sigma``
update); dense parameters (biases, unfactored layers) are trained in the coefficient phase
and averaged as FedAvg; client weights by examples unless ``weights: uniform``; all three
averages are over the devices that deliver at the end of the round (a device that fails
after the basis exchange is left out of the augmentation too: the engine times every leg
but learns once, at the publish). Systems-only runs cannot adapt ranks (no training): they
follow ``systems_ranks`` (fixed, or a previous run's ranks round by round).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from fl.config import FeDLRTConfig, LowRankConfig
from fl.low_rank import LowRankLinear, augment, augmented_start, low_rank_from, truncate
from fl.protocol import Barrier, Leg, RoundProtocol
from fl.state import ModelState
from fl.strategies.base import updates_of
from fl.strategies.fedavg import FedAvg
from fl.training import LocalWork, cohort_gradients, plan_batches, train_cohort


def _weighted_mean(stacked: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``sum_c w_c x_c`` over the leading client axis, in float64."""
    return torch.tensordot(w.to(stacked.device), stacked.double(), dims=1).to(stacked.dtype)


class FeDLRT(FedAvg):
    modes: ClassVar[frozenset[str]] = frozenset({"sync"})

    @classmethod
    def build_model(cls, base: nn.Module, *, config, generator, model_config=None) -> nn.Module:
        low = getattr(model_config, "low_rank", None)
        if not isinstance(low, LowRankConfig):
            raise ValueError("model.low_rank: fedlrt trains factored layers; set model.low_rank")
        linears = [(name, m) for name, m in base.named_modules() if isinstance(m, nn.Linear)]
        picked = linears[:-1] if low.layers == "hidden" else [linears[i] for i in low.layers
                                                              if i < len(linears)]  # fmt: skip
        if not picked:
            raise ValueError("model.low_rank.layers: no Linear layer to factor")
        for name, linear in picked:
            n, m = linear.weight.shape
            if 2 * low.r_max > min(n, m):
                raise ValueError(
                    f"model.low_rank.r_max: at most {min(n, m) // 2} for layer {name} "
                    f"({n} x {m}: augmentation doubles the rank), not {low.r_max}"
                )
            parent, _, child = name.rpartition(".")
            holder = base.get_submodule(parent) if parent else base
            setattr(holder, child, low_rank_from(linear, low.rank, generator))
        return base

    def __init__(
        self,
        cfg: FeDLRTConfig,
        *,
        model: nn.Module,
        low_rank: LowRankConfig,
        local_steps: int,
    ):
        super().__init__(clients_per_round=cfg.clients_per_round, fraction=cfg.fraction)
        self.cfg, self.low = cfg, low_rank
        self._local_steps = local_steps
        self.layers = [n for n, m in model.named_modules() if isinstance(m, LowRankLinear)]
        self.shapes: dict[str, tuple[int, int]] = {
            n: m.shape for n, m in model.named_modules() if isinstance(m, LowRankLinear)
        }
        factored = {f"{n}.{p}" for n in self.layers for p in ("U", "S", "V")}
        self.dense = [k for k, _ in model.named_parameters() if k not in factored]
        self.dense_numel = sum(int(p.numel()) for k, p in model.named_parameters()
                               if k in self.dense)  # fmt: skip
        dense_flops = sum(6 * int(m.weight.numel()) for m in model.modules()
                          if isinstance(m, nn.Linear))  # fmt: skip
        self._dense_layer_flops = dense_flops
        self.ranks = {n: low_rank.rank for n in self.layers}
        self._built_flops = self._flops(self.ranks)
        self.tails = {n: float("nan") for n in self.layers}
        self._schedule: list[dict[str, int]] | None = None
        self._round = 0
        self._basis: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._sent = self.message_floats(self.ranks)  # floats per message, this round

    # --- costs -----------------------------------------------------------------------
    def _flops(self, ranks: dict[str, int]) -> float:
        """Training FLOPs per sample (forward + backward) at these ranks."""
        total = float(self._dense_layer_flops)
        for name, r in ranks.items():
            n, m = self.shapes[name]
            total += 6 * (r * (n + m) + r * r)
        return total

    def message_floats(self, ranks: dict[str, int]) -> dict[str, float]:
        """Floats per device per message at these ranks (notes, section 5)."""
        nm = {k: self.shapes[k][0] + self.shapes[k][1] for k in self.layers}
        r = ranks
        vc = self.cfg.variance_correction
        return {
            "factors_down": sum(nm[k] * r[k] + r[k] ** 2 for k in r) + self.dense_numel,
            "basis_grads_up": sum(
                nm[k] * r[k] + (r[k] ** 2 if vc == "simplified" else 0) for k in r
            ),  # fmt: skip
            "new_directions_down": sum(
                nm[k] * r[k] + (r[k] ** 2 if vc == "simplified" else 0) for k in r
            ),  # fmt: skip
            "correction_up": sum(4 * r[k] ** 2 for k in r) if vc == "full" else 0.0,
            "correction_down": sum(4 * r[k] ** 2 for k in r) if vc == "full" else 0.0,
            "coefficients_up": sum(4 * r[k] ** 2 for k in r) + self.dense_numel,
        }

    def begin_round(self, *, round_idx: int, reform: bool) -> None:
        self._round = round_idx
        if self._schedule is not None:  # systems-only: ranks follow the declared schedule
            self.ranks = dict(self._schedule[min(round_idx, len(self._schedule) - 1)])

    def load_rank_schedule(self, table: dict[str, list]) -> None:
        """Systems-only ranks from a previous run's metrics: ``table`` maps column names to
        lists (``rank_<layer>`` columns needed); raises ValueError naming missing columns."""
        missing = [f"rank_{n}" for n in self.layers if f"rank_{n}" not in table]
        if missing:
            raise ValueError(f"columns {', '.join(missing)}")
        # the rank a round trains at is the one the previous round left (initial for round 0)
        rows = [dict(self.ranks)]
        count = len(table[f"rank_{self.layers[0]}"])  # rows of the earlier run
        rows += [{n: int(table[f"rank_{n}"][i]) for n in self.layers} for i in range(count)]
        self._schedule = rows

    def round_protocol(self, *, global_state, cohort):
        floats = self._sent = self.message_floats(self.ranks)
        bits = {k: v * self.bits_per_param for k, v in floats.items()}
        steps = max(self.cfg.gradient_batches, 1)
        local = max(self._local_steps, 1)
        at_r = self._flops(self.ranks) / self._built_flops
        at_2r = self._flops({k: 2 * r for k, r in self.ranks.items()}) / self._built_flops
        legs: list[Leg | Barrier] = [
            Leg("factors_down", "downlink", bits=bits["factors_down"]),
            Leg("basis_grads", "compute", cycle_share=at_r * steps / local),
            Leg("basis_grads_up", "uplink", bits=bits["basis_grads_up"]),
            Barrier("augment"),
            Leg("new_directions_down", "downlink", bits=bits["new_directions_down"]),
        ]
        if self.cfg.variance_correction == "full":
            legs += [
                Leg("correction_grads", "compute", cycle_share=at_2r * steps / local),
                Leg("correction_up", "uplink", bits=bits["correction_up"]),
                Barrier("correct"),
                Leg("correction_down", "downlink", bits=bits["correction_down"]),
            ]
        legs += [
            Leg("coefficient_steps", "compute", cycle_share=at_2r),
            Leg("coefficients_up", "uplink", bits=bits["coefficients_up"]),
        ]
        return RoundProtocol.of(*legs)

    # --- learning ----------------------------------------------------------------------
    def _weights(self, device_ids, data) -> torch.Tensor:
        if self.cfg.weights == "uniform":
            w = torch.ones(len(device_ids), dtype=torch.float64)
        else:
            w = torch.tensor([float(len(data.client_indices[d])) for d in device_ids],
                             dtype=torch.float64)  # fmt: skip
        return w / w.sum()

    def local_updates(
        self, *, model, data, global_state, device_ids, rho, base_version, round_idx, work, rngs
    ):
        w = self._weights(device_ids, data)
        indices = [data.client_indices[d] for d in device_ids]
        grad_work = LocalWork(work.batch_size, work.lr, steps=self.cfg.gradient_batches)
        grad_plan = plan_batches(indices, grad_work, rngs)
        # 1. basis gradients at W = U S V^T (one backward pass per batch)
        first = cohort_gradients(model, global_state, data.train_x, data.train_y, grad_plan)
        g = first.stacked_state
        # 2. augmentation at the server (weighted means of the basis gradients)
        start: ModelState = {k: global_state[k] for k in self.dense}
        frozen: ModelState = {}
        self._basis = {}
        for name in self.layers:
            u_hat = augment(global_state[f"{name}.U"], _weighted_mean(g[f"{name}.U"], w))
            v_hat = augment(global_state[f"{name}.V"], _weighted_mean(g[f"{name}.V"], w))
            self._basis[name] = (u_hat, v_hat)
            frozen[f"{name}.U"], frozen[f"{name}.V"] = u_hat, v_hat
            start[f"{name}.S"] = augmented_start(global_state[f"{name}.S"])
        offsets = self._corrections(model, data, start, frozen, g, grad_plan, w)
        # 3. coefficient steps, bases frozen, the correction added to every gradient
        plan = plan_batches(indices, work, rngs)
        result = train_cohort(
            model, start, data.train_x, data.train_y, plan, work.lr, frozen=frozen,
            grad_offsets=offsets,
        )  # fmt: skip
        updates = updates_of(result, data, device_ids, base_version)
        for update, weight in zip(updates, w.tolist(), strict=True):
            update.metrics["weight"] = float(weight)
        return updates

    def _corrections(self, model, data, start, frozen, g, plan, w) -> ModelState | None:
        """Per client ``V_c = g - g_c`` on each layer's 2r x 2r coefficient (None: none)."""
        vc = self.cfg.variance_correction
        if vc == "none":
            return None
        offsets: ModelState = {}
        if vc == "simplified":  # the r x r block, from the basis-gradient pass
            for name in self.layers:
                gs = g[f"{name}.S"]  # [C, r, r]
                r = gs.shape[-1]
                block = torch.zeros(gs.shape[0], 2 * r, 2 * r, dtype=gs.dtype, device=gs.device)
                block[:, :r, :r] = _weighted_mean(gs, w).unsqueeze(0) - gs
                offsets[f"{name}.S"] = block
            return offsets
        # full: the coefficient gradient at S~0 in the augmented bases, same batches
        at_start = cohort_gradients(
            model, start, data.train_x, data.train_y, plan, frozen=frozen
        ).stacked_state
        for name in self.layers:
            gc = at_start[f"{name}.S"]
            offsets[f"{name}.S"] = _weighted_mean(gc, w).unsqueeze(0) - gc
        return offsets

    def aggregate(self, *, round_idx, global_state, updates, failures):
        useful = sorted((u for u in updates if u.num_examples > 0), key=lambda u: u.device_id)
        if not useful or not self._basis:
            return global_state
        w = torch.tensor([u.metrics["weight"] for u in useful], dtype=torch.float64)
        w = w / w.sum()
        new: ModelState = dict(global_state)
        for k in self.dense:
            new[k] = _weighted_mean(torch.stack([u.state[k] for u in useful]), w)
        for name in self.layers:
            s_star = _weighted_mean(torch.stack([u.state[f"{name}.S"] for u in useful]), w)
            u_hat, v_hat = self._basis[name]
            u, s, v, tail = truncate(u_hat, s_star, v_hat, tau=self.cfg.tau,
                                     r_min=self.low.r_min, r_max=self.low.r_max)  # fmt: skip
            new[f"{name}.U"], new[f"{name}.S"], new[f"{name}.V"] = u, s, v
            self.ranks[name] = int(s.shape[0])
            self.tails[name] = tail
        self._basis = {}
        return new

    def round_metrics(self) -> dict[str, float]:
        """Per device: bits of each message this round, the uplink compression against
        FedAvg's whole model; per layer: the rank after truncation and the dropped
        singular-value share."""
        floats = self._sent
        up = floats["basis_grads_up"] + floats["correction_up"] + floats["coefficients_up"]
        fedavg = sum(self.shapes[n][0] * self.shapes[n][1] for n in self.layers) + self.dense_numel
        row: dict[str, float] = {"compression_vs_fedavg_up": fedavg / up if up else np.nan}
        row.update({f"bits_{k}": v * self.bits_per_param for k, v in floats.items()})
        for name in self.layers:
            row[f"rank_{name}"] = float(self.ranks[name])
            row[f"sv_tail_{name}"] = self.tails[name]
        return row


__all__ = ["FeDLRT"]
