"""Split training examples across devices: IID, Dirichlet over labels, label shards.

Each function returns a list of index arrays (one per device, sorted) into the training set.
"""

from __future__ import annotations

import numpy as np


def partition_iid(num_examples: int, num_devices: int, rng: np.random.Generator):
    """Shuffle, then cut into ``num_devices`` parts whose sizes differ by at most one."""
    return [np.sort(part) for part in np.array_split(rng.permutation(num_examples), num_devices)]


def partition_dirichlet(
    labels: np.ndarray,
    num_devices: int,
    alpha: float,
    rng: np.random.Generator,
    min_samples: int = 2,
    max_tries: int = 1000,
):
    """For each class, split its examples across devices in Dirichlet(alpha) proportions.

    Redraws until every device has at least ``min_samples`` examples (Hsu et al., 2019; the
    usual recipe). Raises ValueError when that is impossible or not reached in ``max_tries``.
    """
    labels = np.asarray(labels)
    if len(labels) < num_devices * min_samples:
        raise ValueError(
            f"{len(labels)} training examples cannot give {num_devices} devices "
            f"at least {min_samples} each"
        )
    classes = np.unique(labels)
    by_class = [np.flatnonzero(labels == c) for c in classes]
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_devices)]
        for idx in by_class:
            idx = rng.permutation(idx)
            share = rng.dirichlet(np.full(num_devices, alpha))
            cuts = (np.cumsum(share)[:-1] * len(idx)).astype(int)
            for k, piece in enumerate(np.split(idx, cuts)):
                parts[k].append(piece)
        result = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(r) for r in result) >= min_samples:
            return result
    raise ValueError(
        f"Dirichlet(alpha={alpha}) did not give every one of {num_devices} devices "
        f"{min_samples} examples in {max_tries} draws; raise alpha or lower the device count"
    )


def partition_shards(
    labels: np.ndarray, num_devices: int, shards_per_device: int, rng: np.random.Generator
):
    """McMahan et al. (2017): sort by label, cut into equal shards, give each device some."""
    labels = np.asarray(labels)
    num_shards = num_devices * shards_per_device
    if len(labels) < num_shards:
        raise ValueError(f"{len(labels)} training examples cannot fill {num_shards} shards")
    order = np.argsort(labels, kind="stable")
    shards = np.array_split(order, num_shards)
    dealt = rng.permutation(num_shards).reshape(num_devices, shards_per_device)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in dealt]
