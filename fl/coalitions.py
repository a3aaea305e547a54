"""Coalition formation in weight space (seed paper 003, El Hanjri et al., ICC 2024).

Notes: ``papers/coalition.md``. Only the paper's abstract was available: devices are compared
by the Euclidean distance between their model weights, close devices form a coalition, a
coalition's barycenter is the average of its members' weights, and a server combines them.
Everything else here is the notes' inferred recipe (section 4), each choice a switch:

* k-means (``formation: kmeans``): k-means++ seeding, or a warm start from the previous
  membership (the barycenters of the previous coalitions, recomputed on the new weights);
  assign / recompute until no device moves or ``max_iter`` iterations; an empty coalition is
  re-seeded with the device farthest from its own centre.
* threshold (``formation: threshold``): bounded confidence; a device joins the nearest
  barycenter within ``threshold`` times the median pairwise distance, else founds a new
  coalition (K emerges).
* Distances on the flattened floating-point parameters, or on a seeded Gaussian random
  projection to ``projection_dim`` dimensions for large models (Johnson-Lindenstrauss: pairwise
  distances kept to a factor 1 +- O(1/sqrt(dim))).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fl.state import ModelState


def flatten(states: Sequence[ModelState] | ModelState, names: Sequence[str]) -> np.ndarray:
    """Weights as rows [C, d] float64: ``states`` is a list of states or one stacked state
    [C, ...] per name; only the tensors in ``names`` (floating point) are used."""
    if isinstance(states, dict):
        parts = [states[k].detach().reshape(states[k].shape[0], -1) for k in names]
        return torch.cat(parts, dim=1).double().cpu().numpy()
    rows = [torch.cat([s[k].detach().reshape(-1) for k in names]) for s in states]
    return torch.stack(rows).double().cpu().numpy()


def random_projection(x: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``x @ R / sqrt(dim)`` with R [d, dim] standard normal (drawn from ``rng``)."""
    if dim >= x.shape[1]:
        return x
    r = rng.standard_normal((x.shape[1], dim))
    return x @ r / np.sqrt(dim)


def _sq_dist(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [n, k], exact to rounding (no ||a||^2 - 2ab + ||b||^2)."""
    return ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)


def kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: k row indices, each next one drawn with probability ~ D(x)^2."""
    n = x.shape[0]
    chosen = [int(rng.integers(n))]
    d2 = _sq_dist(x, x[chosen]).min(axis=1)
    while len(chosen) < k:
        total = d2.sum()
        nxt = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        chosen.append(nxt)
        d2 = np.minimum(d2, _sq_dist(x, x[[nxt]])[:, 0])
    return np.asarray(chosen)


def centres_of(x: np.ndarray, labels: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of each coalition's rows [k, d] (nan rows for empty coalitions)."""
    centres = np.full((k, x.shape[1]), np.nan)
    for c in range(k):
        member = labels == c
        if member.any():
            w = weights[member]
            centres[c] = (w[:, None] * x[member]).sum(axis=0) / w.sum()
    return centres


def kmeans(
    x: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    max_iter: int = 10,
    start: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    n_init: int = 1,
) -> tuple[np.ndarray, int]:
    """Lloyd's k-means on rows ``x`` [n, d]. Returns (labels [n] in 0..k-1, iterations).

    ``start``: initial labels (a warm start; -1 = unplaced), else k-means++ seeding, best of
    ``n_init`` seedings by within-coalition sum of squares. Centres are ``weights``-weighted
    means (default equal). Ties go to the lowest coalition index. An empty coalition is
    re-seeded with the device farthest from its own centre.
    """
    if start is None and n_init > 1:
        runs = [kmeans(x, k, rng, max_iter=max_iter, weights=weights) for _ in range(n_init)]
        return min(runs, key=lambda run: _inertia(x, run[0], weights))
    n = x.shape[0]
    k = min(k, n)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if start is not None and (start >= 0).any():
        labels = np.asarray(start).copy()
        centres = centres_of(x, np.where(labels >= 0, labels, -1), k, w)
    else:
        centres = x[kmeans_pp(x, k, rng)]
        labels = np.full(n, -1)
    iterations = 0
    for step in range(1, max_iter + 1):
        iterations = step
        empty = np.flatnonzero(np.isnan(centres[:, 0]))
        if empty.size:  # re-seed each with the device farthest from its own centre
            own = np.where(labels >= 0, labels, 0)
            far = np.where(
                (labels >= 0) & ~np.isnan(centres[own, 0]),
                ((x - np.nan_to_num(centres[own])) ** 2).sum(axis=1),
                np.inf,  # unplaced devices are the farthest of all
            )
            for c in empty:
                i = int(np.argmax(far))
                centres[c], far[i] = x[i], -np.inf
        new = np.argmin(_sq_dist(x, centres), axis=1)
        moved = not np.array_equal(new, labels)
        labels = new
        centres = centres_of(x, labels, k, w)
        if not moved:
            break
    return labels, iterations


def _inertia(x: np.ndarray, labels: np.ndarray, weights: np.ndarray | None) -> float:
    w = np.ones(len(x)) if weights is None else weights
    centres = centres_of(x, labels, int(labels.max()) + 1, w)
    return float((w * ((x - centres[labels]) ** 2).sum(axis=1)).sum())


def threshold_formation(x: np.ndarray, threshold: float) -> np.ndarray:
    """Bounded confidence: in device order, join the nearest existing coalition whose
    barycenter is within ``threshold`` x the median pairwise distance, else found a new one.
    Returns labels [n] in 0..K-1 (K emerges)."""
    n = x.shape[0]
    pair = np.sqrt(_sq_dist(x, x))
    off = pair[np.triu_indices(n, 1)]
    radius = threshold * (float(np.median(off)) if off.size else 0.0)
    labels = np.full(n, -1)
    sums: list[np.ndarray] = []
    counts: list[int] = []
    for i in range(n):
        if sums:
            centres = np.stack([s / c for s, c in zip(sums, counts, strict=True)])
            d = np.sqrt(((centres - x[i]) ** 2).sum(axis=1))
            best = int(np.argmin(d))
            if d[best] <= radius:
                labels[i] = best
                sums[best] = sums[best] + x[i]
                counts[best] += 1
                continue
        labels[i] = len(sums)
        sums.append(x[i].copy())
        counts.append(1)
    return labels


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of devices in their coalition's majority true group (1 = every coalition
    pure). Unplaced devices (label -1) are left out."""
    placed = labels >= 0
    if not placed.any():
        return float("nan")
    hits = 0
    for c in np.unique(labels[placed]):
        hits += np.bincount(truth[labels == c]).max()
    return hits / int(placed.sum())


def distances(x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean distance of a device to its own coalition's centre, mean distance between
    coalition centres); nan where undefined."""
    k = int(labels.max()) + 1 if labels.size else 0
    centres = centres_of(x, labels, k, np.ones(len(x)))
    own = np.sqrt(((x - centres[labels]) ** 2).sum(axis=1)).mean() if k else np.nan
    ok = centres[~np.isnan(centres[:, 0])]
    if len(ok) < 2:
        return float(own), float("nan")
    pair = np.sqrt(_sq_dist(ok, ok))
    return float(own), float(pair[np.triu_indices(len(ok), 1)].mean())


def barycenter(states: Sequence[ModelState], weights: Sequence[float]) -> ModelState:
    """``sum_i lambda_i w_i`` with ``lambda`` the normalised ``weights`` (float64 sums)."""
    w = torch.tensor(list(weights), dtype=torch.float64)
    w = w / w.sum()
    first = states[0]
    out = {}
    for name, t in first.items():
        stacked = torch.stack([s[name] for s in states]).double()
        out[name] = torch.tensordot(w.to(t.device), stacked, dims=1).to(t.dtype)
    return out
