"""Server optimisers: S. J. Reddi et al., "Adaptive Federated Optimization", ICLR 2021
(arXiv:2003.00295), Algorithm 2; notes in papers/baselines_selection.md.

The server treats the round's pseudo-gradient ``Delta_t = avg_i(w_i) - x_t`` (the strategy's
average of the returned models, minus the global model) as a gradient step to take:

* ``sgd``:      ``x + lr Delta`` (lr 1: plain FedAvg replacement);
* ``adagrad``:  ``v = v + Delta^2``;
* ``yogi``:     ``v = v - (1 - beta2) Delta^2 sign(v - Delta^2)``;
* ``adam``:     ``v = beta2 v + (1 - beta2) Delta^2``;

and for the three adaptive ones ``m = beta1 m + (1 - beta1) Delta``, ``x = x + lr m /
(sqrt(v) + tau)``, with ``m_0 = 0``, ``v_0 = tau^2`` and no bias correction (as in the paper).
State is kept in float64 per tensor and the result cast back to each tensor's dtype.
"""

from __future__ import annotations

import torch

from fl.config import ServerOptimizerConfig
from fl.state import ModelState


class ServerOptimizer:
    """One of Reddi et al.'s server updates; :meth:`step` returns the new global model."""

    def __init__(self, cfg: ServerOptimizerConfig):
        self.cfg = cfg
        self.m: dict[str, torch.Tensor] = {}
        self.v: dict[str, torch.Tensor] = {}

    def step(self, global_state: ModelState, averaged: ModelState) -> ModelState:
        """``x_{t+1}`` from ``x_t`` (``global_state``) and the cohort's average model."""
        cfg = self.cfg
        new: ModelState = {}
        for name, x in global_state.items():
            if not x.is_floating_point():  # counters and the like: taken as averaged
                new[name] = averaged[name]
                continue
            x64 = x.double()
            delta = averaged[name].double() - x64
            if cfg.kind == "sgd":
                new[name] = (x64 + cfg.lr * delta).to(x.dtype)
                continue
            beta1, beta2 = cfg.betas
            m = self.m.get(name, torch.zeros_like(x64))
            v = self.v.get(name, torch.full_like(x64, cfg.tau**2))
            m = beta1 * m + (1 - beta1) * delta
            sq = delta * delta
            if cfg.kind == "adagrad":
                v = v + sq
            elif cfg.kind == "yogi":
                v = v - (1 - beta2) * sq * torch.sign(v - sq)
            else:  # adam
                v = beta2 * v + (1 - beta2) * sq
            self.m[name], self.v[name] = m, v
            new[name] = (x64 + cfg.lr * m / (v.sqrt() + cfg.tau)).to(x.dtype)
        return new
