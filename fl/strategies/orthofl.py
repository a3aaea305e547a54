"""OrthoFL: J. Zhang et al., "Orthogonal Calibration for Asynchronous Federated Learning",
arXiv:2502.15940 (2025). Notes: papers/orthofl.md (sections 3, 5 and 6).

Two kinds of weights. The server's global model ``W`` is a staleness-weighted moving average of
the arriving client models (the reported, evaluated model). Each device keeps its *own* model,
never overwritten by ``W``: when device m's trained weights ``W_m`` arrive, the server takes the
shift ``Delta`` of the global side while m was away, removes, tensor by tensor, the component
parallel to m's own update ``Delta_m = W_m - (model sent to m)``, and sends ``W_m + Delta_perp``
back as m's next starting model.

``shift_source`` (notes, section 6) picks how ``Delta`` is measured:
- ``"global_ma"`` (the paper's text): ``W^(t) - W^(tau_m+)``, the moving average after this
  arrival minus the moving average right after m's last sync;
- ``"dispatched_chain"`` (the reference code): ``D - D_m``, the most recently dispatched
  calibrated model minus the one dispatched to m (both before this arrival); ``D`` then becomes
  the model sent to m. The moving average is then used only for evaluation.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from fl.staleness import POLYNOMIAL_HALF, Staleness
from fl.state import ClientUpdate, ModelState
from fl.strategies.base import Strategy

SHIFT_SOURCES = ("global_ma", "dispatched_chain")


def calibrates(name: str, tensor: torch.Tensor) -> bool:
    """Tensors the calibration touches: floating point, not BatchNorm (the client keeps its
    own BN values, as in the reference code; notes section 3, step 7)."""
    return tensor.is_floating_point() and "bn" not in name


def orthogonal_shift(
    shift: ModelState, own_update: ModelState, *, epsilon: float = 1e-19, layerwise: bool = True
) -> ModelState:
    """``shift`` minus its projection on ``own_update``: per tensor (``layerwise``, the method)
    or over the whole model at once (the paper's ablation).

    ``<a, b> / (||b||^2 + epsilon)``, with the inner products in float64. A tensor (or model)
    whose own update is exactly zero (a frozen layer) or whose shift is exactly zero (nobody
    else moved) is passed through unprojected. Only :func:`calibrates` tensors are returned.
    """
    names = [k for k, v in shift.items() if calibrates(k, v)]
    groups = [[k] for k in names] if layerwise else [names]
    out: ModelState = {}
    for group in groups:
        dot = sum(float((shift[k].double() * own_update[k].double()).sum()) for k in group)
        norm2 = sum(float(own_update[k].double().square().sum()) for k in group)
        coef = 0.0 if norm2 == 0.0 else dot / (norm2 + epsilon)
        for k in group:
            out[k] = (shift[k].double() - coef * own_update[k].double()).to(shift[k].dtype)
    return out


class OrthoFL(Strategy):
    modes: ClassVar[frozenset[str]] = frozenset({"async"})
    personalized = False  # devices keep own models, but W is what is reported

    def __init__(
        self,
        *,
        initial_state: ModelState,
        alpha: float = 0.6,
        staleness: Staleness = POLYNOMIAL_HALF,
        shift_source: str = "global_ma",
        epsilon: float = 1e-19,
        layerwise: bool = True,
        first_update_adopts: bool = True,
    ):
        if shift_source not in SHIFT_SOURCES:
            raise ValueError(f"shift_source must be one of {SHIFT_SOURCES}, got {shift_source!r}")
        self.alpha, self.staleness = alpha, staleness
        self.shift_source, self.epsilon, self.layerwise = shift_source, epsilon, layerwise
        self.first_update_adopts = first_update_adopts
        # Every snapshot starts at W^(0) (notes, section 4). Entries appear per device on its
        # first arrival, so memory grows with the devices that have reported.
        self._initial = {k: v.clone() for k, v in initial_state.items()}
        self._sent: dict[int, ModelState] = {}  # W_m^(tau_m+): the model sent to device m
        self._global_at_sync: dict[int, ModelState] = {}  # W^(tau_m+)
        self._synced_version: dict[int, int] = {}  # tau_m
        self._last_dispatched: ModelState = self._initial  # D (dispatched_chain)

    def dispatch_state(self, *, device_id: int, global_state: ModelState) -> ModelState:
        """A device starts from its own calibrated model, never from W."""
        return self._sent.get(device_id, self._initial)

    def staleness_of(self, *, version: int, update: ClientUpdate) -> int:
        """``t - tau_m``: versions since the device last synced (its previous arrival, or
        version 0), not since this job's dispatch; they differ when devices wait between
        jobs (``simulation.concurrency`` below the device count)."""
        return version - self._synced_version.get(update.device_id, 0)

    def mixing_weight(self, version: int, device_id: int) -> float:
        """beta_t = alpha * s(t - tau_m); 1 for the very first server update (when enabled)."""
        if version == 0 and self.first_update_adopts:
            return 1.0
        return self.alpha * self.staleness(version - self._synced_version.get(device_id, 0))

    def on_arrival(
        self, *, global_state: ModelState, version: int, update: ClientUpdate, now_s: float
    ) -> ModelState:
        m, trained = update.device_id, update.state
        sent = self._sent.get(m, self._initial)
        beta = self.mixing_weight(version, m)
        new_global = {
            k: (1.0 - beta) * v + beta * trained[k].to(v.dtype) for k, v in global_state.items()
        }
        own_update = {k: trained[k] - sent[k] for k in trained}
        if self.shift_source == "global_ma":
            before = self._global_at_sync.get(m, self._initial)
            shift = {k: new_global[k] - before[k] for k in new_global}
        else:
            shift = {k: self._last_dispatched[k] - sent[k] for k in sent}
        calibrated = orthogonal_shift(
            shift, own_update, epsilon=self.epsilon, layerwise=self.layerwise
        )
        reply = {k: v + calibrated[k] if k in calibrated else v for k, v in trained.items()}
        self._sent[m] = reply
        self._global_at_sync[m] = new_global
        self._synced_version[m] = version + 1
        self._last_dispatched = reply
        return new_global
