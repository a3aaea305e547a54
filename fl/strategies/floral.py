"""FLoRAL: A. J. Almansoori, S. Horvath, M. Takac, "Collaborative and Efficient
Personalization with Mixtures of Adaptors", CPAL 2025 (arXiv:2410.03497); reference code
github.com/zeligism/FLoRAL. Notes: papers/floral.md (the code's defaults are the ground truth
where the notes say so).

* Model (fl/mixture.py): every Linear gets C low-rank adaptors, rank
  ``max(1, floor(rho d_in d_out / (d_in + d_out)))``; one router per device for all layers.
* A round: every sampled device trains base, adaptors and its own router logits jointly (the
  whole cohort in one batched call), the router with its own step size and fresh uniform
  noise ``U[0, router_noise)`` on its logits at every step; adaptor gradients preconditioned
  as in the reference trainer (``precondition``). Up: base, adaptors and the C router
  logits (the server needs them for the weights); the router stays on the device.
* Server: base by ``p_k = n_k / sum n_j``; adaptor c by ``p(k | c) = p_k pi^k_c /
  sum_j p_j pi^j_c`` (A, B, beta averaged separately). Routers are never aggregated.
* ``router: oracle``: one-hot logits on the device's true group (0 there, -100 elsewhere),
  never trained (the notes' "optimal pi"). ``private_adaptors: true``: the local-adaptor
  baseline (adaptors and router never leave the device; only the base is federated).

Our choices: a device's router logits persist on the device across rounds (zeros before its
first round); the global model's test accuracy uses the uniform mixture (router logits 0).
Conv adaptors are not built: a CNN is refused naming ``model.kind``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from fl.coalitions import purity
from fl.config import FloralConfig
from fl.mixture import MixtureLinear, mixture_of, precondition
from fl.protocol import three_leg
from fl.state import ClientUpdate, ModelState
from fl.strategies.fedavg import FedAvg, weighted_average
from fl.training import plan_batches, train_cohort

ORACLE_OFF = -100.0  # logit of the adaptors that are not a device's true group


class Floral(FedAvg):
    modes: ClassVar[frozenset[str]] = frozenset({"sync"})
    personalized = True

    @classmethod
    def build_model(cls, base: nn.Module, *, config, generator, model_config=None) -> nn.Module:
        adaptors = 1 if config.private_adaptors else config.adaptors
        return mixture_of(base, adaptors=adaptors, rho=config.rho, generator=generator)

    def __init__(self, cfg: FloralConfig, *, model: nn.Module, num_devices: int):
        super().__init__(clients_per_round=cfg.clients_per_round, fraction=cfg.fraction)
        self.cfg = cfg
        self.adaptors = 1 if cfg.private_adaptors else cfg.adaptors
        names = [k for k, _ in model.named_parameters()]
        self.adaptor_names = [k for k in names if k.rpartition(".")[2] in ("A", "B", "beta")]
        self.base_names = [k for k in names if k not in self.adaptor_names and k != "router"]
        base_numel = sum(int(p.numel()) for k, p in model.named_parameters()
                         if k in self.base_names)  # fmt: skip
        adaptor_numel = sum(int(p.numel()) for k, p in model.named_parameters()
                            if k in self.adaptor_names)  # fmt: skip
        self.extra_fraction = adaptor_numel / base_numel
        self.model_floats = base_numel + adaptor_numel
        self.logits = torch.zeros(num_devices, self.adaptors)  # device-side routers
        self.private: dict[str, torch.Tensor] = {}  # private_adaptors: per device [n, ...]
        self.truth: np.ndarray | None = None
        self.seen = np.zeros(num_devices, dtype=bool)
        self.ranks = [int(m.A.shape[1]) for m in model.modules() if isinstance(m, MixtureLinear)]

    # --- what a round sends ----------------------------------------------------------
    def round_protocol(self, *, global_state, cohort):
        """Down: base + C adaptors (base only with private adaptors); up: the same and the
        C router logits (the server's adaptor weights)."""
        base = sum(int(global_state[k].numel()) for k in self.base_names)
        shared = base if self.cfg.private_adaptors else self.model_floats
        router = 0 if self.cfg.private_adaptors else self.adaptors
        down = shared * self.bits_per_param
        up = (shared + router) * self.bits_per_param
        cached = self.__dict__.get("_legs")
        if cached is None or cached[0] != (down, up):
            cached = self._legs = ((down, up), three_leg(down, up))
        return cached[1]

    # --- learning ----------------------------------------------------------------------
    def _oracle(self, device_ids) -> torch.Tensor:
        if self.truth is None:
            raise ValueError("strategy.router: oracle needs the true groups of a clustered "
                             "partition (data.partition.kind: clustered)")  # fmt: skip
        out = torch.full((len(device_ids), self.adaptors), ORACLE_OFF)
        for i, d in enumerate(device_ids):
            out[i, int(self.truth[d]) % self.adaptors] = 0.0
        return out

    def _device_models(self, global_state: ModelState, device_ids) -> ModelState:
        """Each device's model, stacked [C, ...]: the shared state, its router (and its own
        adaptors with ``private_adaptors``)."""
        c = len(device_ids)
        ids = torch.as_tensor(list(device_ids), dtype=torch.long)
        states = {k: v.unsqueeze(0).expand(c, *v.shape) for k, v in global_state.items()}
        if self.cfg.router == "oracle":
            states["router"] = self._oracle(device_ids).to(global_state["router"].device)
        else:
            states["router"] = self.logits[ids].to(global_state["router"].device)
        for k, v in self.private.items():
            states[k] = v[ids]
        return states

    def device_states(self, *, global_state, device_ids):
        return self._device_models(global_state, device_ids)

    def local_updates(
        self, *, model, data, global_state, device_ids, rho, base_version, round_idx, work, rngs
    ):
        if self.truth is None and data.device_groups is not None:
            self.truth = np.asarray(data.device_groups)
        if self.cfg.private_adaptors and not self.private:
            n = len(self.logits)
            self.private = {k: global_state[k].unsqueeze(0).repeat(n, *[1] * global_state[k].dim())
                            for k in self.adaptor_names}  # fmt: skip
        start = {k: v.clone() for k, v in self._device_models(global_state, device_ids).items()}
        plan = plan_batches([data.client_indices[d] for d in device_ids], work, rngs)
        steps = plan.index.shape[1]
        noise = torch.stack([
            torch.rand(steps, self.adaptors, generator=self.torch_rng("router_noise", d, round_idx))
            for d in device_ids
        ]) * self.cfg.router_noise  # fmt: skip
        router_lr = 0.0 if self.cfg.router == "oracle" else self.cfg.router_lr
        result = train_cohort(
            model, start, data.train_x, data.train_y, plan, work.lr, stacked_start=True,
            lr_by_name={"router": router_lr},
            client_inputs=noise.to(data.train_x.device),
            grad_transform=precondition if self.cfg.precondition else None,
        )  # fmt: skip
        trained = result.stacked_state
        ids = torch.as_tensor(list(device_ids), dtype=torch.long)
        if self.cfg.router == "learned":
            self.logits[ids] = trained["router"].detach().cpu()
        for k in self.private:
            self.private[k][ids] = trained[k]
        self.seen[device_ids] = True
        losses = result.train_loss.tolist()
        return [
            ClientUpdate(
                device_id=d,
                base_version=base_version,
                state={k: v[i] for k, v in trained.items()},
                num_examples=len(data.client_indices[d]),
                metrics={"train_loss": losses[i]},
            )
            for i, d in enumerate(device_ids)
        ]

    def aggregate(self, *, round_idx, global_state, updates, failures):
        useful = sorted((u for u in updates if u.num_examples > 0), key=lambda u: u.device_id)
        if not useful:
            return global_state
        counts = [float(u.num_examples) for u in useful]
        new = dict(global_state)
        new.update(weighted_average([{k: u.state[k] for k in self.base_names} for u in useful],
                                    counts))  # fmt: skip
        if self.cfg.private_adaptors:
            return new
        p = torch.tensor(counts, dtype=torch.float64)
        p = p / p.sum()
        pi = torch.softmax(torch.stack([u.state["router"].double() for u in useful]), dim=1)
        joint = p[:, None] * pi  # [K, C]: p_k pi^k_c
        weights = joint / joint.sum(dim=0, keepdim=True).clamp(min=1e-12)  # p(k | c)
        for k in self.adaptor_names:
            stacked = torch.stack([u.state[k] for u in useful]).double()  # [K, C, ...]
            w = weights.to(stacked.device).reshape(*weights.shape, *[1] * (stacked.dim() - 2))
            new[k] = (w * stacked).sum(dim=0).to(global_state[k].dtype)
        return new

    def round_metrics(self) -> dict[str, float]:
        """Router purity (argmax of each seen device's mixture against its true group),
        mean router entropy (nats), extra parameters as a fraction of the base model."""
        seen = np.flatnonzero(self.seen)
        logits = self._oracle(seen.tolist()) if self.cfg.router == "oracle" and len(seen) \
            else self.logits[seen]  # fmt: skip
        pi = torch.softmax(logits.double(), dim=1)
        entropy = float(-(pi * torch.log(pi.clamp(min=1e-300))).sum(1).mean()) if len(seen) \
            else float("nan")  # fmt: skip
        pure = float("nan")
        if self.truth is not None and len(seen) and self.adaptors > 1:
            pure = purity(pi.argmax(dim=1).numpy(), self.truth[seen])
        return {
            "router_purity": pure,
            "router_entropy": entropy,
            "extra_params_fraction": self.extra_fraction,
        }


__all__ = ["Floral"]
