"""Weight-driven coalition FL: M. El Hanjri, H. Reguieg, A. Attiaoui, A. Abouaomar,
A. Kobbane, M. El Kamili, "Efficient Collaborations through Weight-Driven Coalition Dynamics
in Federated Learning Systems", IEEE ICC 2024 (arXiv:2401.12356). Notes: papers/coalition.md.

From the paper (abstract): devices are compared by the Euclidean distance between their model
weights; close devices form a coalition; a coalition's barycenter is the average of its
members' weights; a server combines the barycenters.

Our choices (the notes' inferred recipe, each a scenario switch, see
:class:`fl.config.CoalitionConfig`): k-means or threshold formation (fl/coalitions.py) on the
weights the devices uploaded in a re-forming round; barycenters equal- or example-weighted;
the server combines barycenters equally, by size or by examples; devices train from and run
the global model or their coalition's barycenter. Between re-formings membership is fixed; a
coalition with no delivery in a round keeps its last barycenter. Devices first seen after a
re-forming are placed at the next one (until then they do not take part). Systems-only runs
have no weights to compare: devices are dealt to coalitions round-robin (device k to k mod K).

The simulator decides *when* coalitions re-form and *who heads* them (it knows the channel);
this class decides *what* they are (:meth:`reform`), what a round sends
(:meth:`round_protocol`: with ``head_d2d`` members send their model to their head over a D2D
leg and only heads upload, except in re-forming rounds, where every device uploads its own
weights because formation needs them) and how updates are combined.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fl.coalitions import barycenter, flatten, kmeans, random_projection, threshold_formation
from fl.config import CoalitionConfig
from fl.protocol import Barrier, Leg, RoundProtocol, three_leg
from fl.state import ClientUpdate, ModelState
from fl.strategies.base import stack, updates_of
from fl.strategies.fedavg import FedAvg
from fl.training import plan_batches, train_cohort


class CoalitionFL(FedAvg):
    modes: ClassVar[frozenset[str]] = frozenset({"sync"})

    def __init__(self, cfg: CoalitionConfig, *, initial_state: ModelState, num_devices: int):
        super().__init__()
        self.cfg = cfg
        self.personalized = cfg.returns == "barycenter"
        self.uses_d2d = cfg.communication == "head_d2d"
        self.names = [k for k, v in initial_state.items() if v.is_floating_point()]
        self.membership = np.full(num_devices, -1, dtype=np.int64)  # -1: not placed yet
        self.barycenters: dict[int, ModelState] = {}
        self.heads: dict[int, int] = {}  # coalition -> head device (set by the simulator)
        self.medoids: dict[int, int] = {}  # coalition -> member closest to its barycenter
        self.reforming = False
        self.last: dict[str, float] = {}  # formation metrics of the last re-forming
        self._features: np.ndarray | None = None  # rows of the last re-forming's devices
        self._feature_ids: np.ndarray | None = None

    # --- what the simulator asks -------------------------------------------------------
    def reform_clock(self):
        return self.cfg.reform.every_rounds, self.cfg.reform.every_s

    def begin_round(self, *, round_idx: int, reform: bool) -> None:
        """Called by the simulator before the round's protocol: is this a re-forming round."""
        self.reforming = reform

    def select(self, *, round_idx, available_ids, rng):
        if self.reforming:
            return sorted(int(i) for i in available_ids)
        return sorted(int(i) for i in available_ids if self.membership[i] >= 0)

    def round_protocol(self, *, global_state, cohort):
        bits = self.model_bits(global_state)
        if self.cfg.communication == "server" or self.reforming or not self.heads:
            return three_leg(bits, bits)
        labels = self.membership[cohort]
        head_of = np.array([self.heads.get(int(c), -1) for c in labels], dtype=np.int64)
        is_head = head_of == cohort
        return RoundProtocol.of(
            Leg("model_down", "downlink", bits=bits),
            Leg("train", "compute"),
            Barrier("trained"),
            Leg(
                "to_head",
                "d2d",
                bits=bits,
                participants=~is_head,
                receivers=head_of,
                receiver_lost="head_failed",
            ),
            Barrier("at_heads"),
            Leg("barycenter_up", "uplink", bits=bits, participants=is_head),
        )

    # --- learning ------------------------------------------------------------------------
    def _start_states(self, global_state: ModelState, device_ids: list[int]) -> ModelState:
        """What each device trains from and runs, stacked [C, ...]."""
        if self.cfg.returns == "global" or (self.reforming and self.cfg.reform_from == "global"):
            c = len(device_ids)
            return {k: v.unsqueeze(0).expand(c, *v.shape) for k, v in global_state.items()}
        own = [self.barycenters.get(int(self.membership[d]), global_state) for d in device_ids]
        return stack(own)

    def device_states(self, *, global_state, device_ids):
        if self.cfg.returns == "global":
            c = len(device_ids)
            return {k: v.unsqueeze(0).expand(c, *v.shape) for k, v in global_state.items()}
        own = [self.barycenters.get(int(self.membership[d]), global_state) for d in device_ids]
        return stack(own)

    def local_updates(
        self, *, model, data, global_state, device_ids, rho, base_version, round_idx, work, rngs
    ):
        plan = plan_batches([data.client_indices[d] for d in device_ids], work, rngs)
        start = self._start_states(global_state, device_ids)
        result = train_cohort(
            model, start, data.train_x, data.train_y, plan, work.lr, stacked_start=True
        )
        return updates_of(result, data, device_ids, base_version)

    def reform(self, *, round_idx: int, updates: list[ClientUpdate], num_devices: int) -> None:
        """Re-form the coalitions from the weights ``updates`` carry (the devices that
        delivered in this re-forming round); devices without an update keep their coalition.
        With no updates (systems-only) devices are dealt round-robin."""
        k = self.cfg.coalitions
        if not updates:
            if (self.membership < 0).any():
                self.membership = np.arange(num_devices, dtype=np.int64) % k
            self.medoids = {c: int(np.flatnonzero(self.membership == c)[0])
                            for c in np.unique(self.membership)}  # fmt: skip
            return
        ids = np.array([u.device_id for u in updates], dtype=np.int64)
        x = flatten([u.state for u in updates], self.names)
        if self.cfg.projection_dim is not None:
            x = random_projection(x, self.cfg.projection_dim, self.rng("projection"))
        if self.cfg.formation == "threshold":
            labels = threshold_formation(x, self.cfg.threshold)
            iterations = 1
        else:
            warm = self.membership[ids] if self.cfg.init == "warm" else None
            if warm is not None and (warm < 0).all():
                warm = None
            weights = None
            if self.cfg.barycenter == "examples":
                weights = np.array([u.num_examples for u in updates], dtype=float)
            labels, iterations = kmeans(
                x, k, self.rng("kmeans", round_idx), max_iter=self.cfg.max_iter, start=warm,
                weights=weights, n_init=self.cfg.n_init,
            )  # fmt: skip
        # coalition ids are renumbered 0..K'-1 in order of first member, so they stay stable
        _, first = np.unique(labels, return_index=True)
        order = np.argsort(first, kind="stable")
        relabel = np.empty(labels.max() + 1, dtype=np.int64)
        relabel[np.unique(labels)[order]] = np.arange(order.size)
        labels = relabel[labels]
        self.membership = self.membership.copy()
        self.membership[ids] = labels
        self.medoids = {}
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            centre = x[rows].mean(axis=0)
            self.medoids[int(c)] = int(ids[rows[np.argmin(((x[rows] - centre) ** 2).sum(1))]])
        self._features, self._feature_ids = x, ids
        self.last = {"kmeans_iterations": float(iterations)}

    def aggregate(self, *, round_idx, global_state, updates, failures):
        useful = sorted((u for u in updates if u.num_examples > 0), key=lambda u: u.device_id)
        if not useful:
            return global_state
        groups: dict[int, list[ClientUpdate]] = {}
        for u in useful:
            c = int(self.membership[u.device_id])
            if c >= 0:
                groups.setdefault(c, []).append(u)
        if not groups:
            return global_state
        anchors, sizes, examples = [], [], []
        for c in sorted(groups):
            members = groups[c]
            counts = [float(u.num_examples) for u in members]
            lam = counts if self.cfg.barycenter == "examples" else [1.0] * len(members)
            self.barycenters[c] = barycenter([u.state for u in members], lam)
            anchors.append(self.barycenters[c])
            sizes.append(float(len(members)))
            examples.append(sum(counts))
        mu = {"equal": [1.0] * len(anchors), "size": sizes, "examples": examples}[self.cfg.combine]
        new = barycenter(anchors, mu)
        return {**global_state, **new}

    def round_metrics(self) -> dict[str, float]:
        placed = self.membership[self.membership >= 0]
        sizes = np.bincount(placed) if placed.size else np.zeros(0, np.int64)
        sizes = sizes[sizes > 0]
        return {
            "n_coalitions": float(sizes.size),
            "coalition_size_min": float(sizes.min()) if sizes.size else float("nan"),
            "coalition_size_max": float(sizes.max()) if sizes.size else float("nan"),
            "reformed": float(self.reforming),
        }

    def weights_of_last_reform(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(rows [m, d], device ids [m]) the last re-forming clustered (for distance metrics)."""
        return self._features, self._feature_ids


__all__ = ["CoalitionFL"]
