"""Data sets: scikit-learn's bundled digits (the embedded default) and FedProx synthetic."""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class FederatedData:
    """Training data pooled in one tensor, with per-device index lists, and a test split.

    Attributes
    ----------
    train_x : Tensor [N, *input_shape] float32
    train_y : Tensor [N] int64
    client_indices : list of ndarray of int, one per device (indices into train_*)
    test_x, test_y : held-out test split, same layout
    num_classes : int
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    client_indices: list[np.ndarray]
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    # per-device held-out indices into train_x (personalised accuracy), when configured
    client_test_indices: list[np.ndarray] | None = None
    # the true group of each device under a clustered partition, ndarray [n_devices] int
    device_groups: np.ndarray | None = None
    # ... and the group of each test example (the test split holds every group's copy)
    test_groups: np.ndarray | None = None

    @property
    def num_groups(self) -> int:
        """Number of true groups (0 without a clustered partition)."""
        return 0 if self.device_groups is None else int(self.device_groups.max()) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device) -> FederatedData:
        """The same data with its tensors on ``device`` (index lists stay numpy)."""
        if self.train_x.device == device:
            return self
        return replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
        )

    def num_examples(self) -> np.ndarray:
        """Training examples per device, ndarray [n_devices] int."""
        return np.array([len(ix) for ix in self.client_indices], dtype=np.int64)


def _digits_csv_path() -> Path:
    # find_spec locates the installed package without importing it: importing
    # sklearn.datasets costs ~1.3 s, reading its bundled CSV costs ~20 ms.
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-learn is not installed; it provides the bundled digits data")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 handwritten digits exactly as ``sklearn.datasets.load_digits`` returns them.

    Returns
    -------
    x : ndarray [1797, 64] float64, pixel intensities 0..16
    y : ndarray [1797] int64, labels 0..9
    """
    with gzip.open(_digits_csv_path(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def split_local_tests(
    client_indices: list[np.ndarray], fraction: float, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split each device's indices into (train, held-out test); at least one of each."""
    train, test = [], []
    for idx in client_indices:
        perm = rng.permutation(idx)
        n_test = min(max(1, int(round(len(idx) * fraction))), len(idx) - 1)
        train.append(np.sort(perm[n_test:]))
        test.append(np.sort(perm[:n_test]))
    return train, test


def split_train_test(n: int, test_fraction: float, rng: np.random.Generator):
    """Random train/test index split: (train_idx, test_idx), both sorted."""
    perm = rng.permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def digits_pool(test_fraction: float, rng: np.random.Generator):
    """Digits scaled to [0, 1] as images [N, 1, 8, 8]: (train_x, train_y, test_x, test_y)."""
    x, y = load_digits_arrays()
    images = torch.from_numpy((x / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(y)
    train, test = split_train_test(len(y), test_fraction, rng)
    return images[train], labels[train], images[test], labels[test]


def synthetic_fedprox(
    *,
    num_devices: int,
    alpha: float,
    beta: float,
    dim: int,
    num_classes: int,
    samples_median: int,
    samples_sigma: float,
    test_fraction: float,
    rng: np.random.Generator,
) -> FederatedData:
    """FedProx synthetic(alpha, beta) (Li et al., 2020, section 5.1).

    Device k: ``u_k ~ N(0, alpha)``, ``W_k, b_k ~ N(u_k, 1)``; ``B_k ~ N(0, beta)``,
    ``v_k ~ N(B_k, 1)``; ``x ~ N(v_k, diag(j^-1.2))``; ``y = argmax(W_k x + b_k)``. alpha controls
    how much the local models differ, beta how much the local inputs differ. Sample counts are
    log-normal (median ``samples_median``); ``test_fraction`` of each device's samples go to the
    shared test split.
    """
    cov_diag = np.arange(1, dim + 1, dtype=float) ** -1.2
    xs, ys, tx, ty, indices = [], [], [], [], []
    start = 0
    counts = np.maximum(
        4, np.round(samples_median * np.exp(samples_sigma * rng.standard_normal(num_devices)))
    ).astype(int)
    for k in range(num_devices):
        u = rng.normal(0.0, np.sqrt(alpha))
        w = rng.normal(u, 1.0, size=(num_classes, dim))
        b = rng.normal(u, 1.0, size=num_classes)
        v = rng.normal(rng.normal(0.0, np.sqrt(beta)), 1.0, size=dim)
        x = v + np.sqrt(cov_diag) * rng.standard_normal((counts[k], dim))
        y = np.argmax(x @ w.T + b, axis=1)
        n_test = max(1, int(round(counts[k] * test_fraction)))
        xs.append(x[n_test:])
        ys.append(y[n_test:])
        tx.append(x[:n_test])
        ty.append(y[:n_test])
        indices.append(np.arange(start, start + counts[k] - n_test))
        start += counts[k] - n_test

    def as_x(parts):
        return torch.from_numpy(np.concatenate(parts).astype(np.float32))

    def as_y(parts):
        return torch.from_numpy(np.concatenate(parts).astype(np.int64))

    return FederatedData(as_x(xs), as_y(ys), indices, as_x(tx), as_y(ty), num_classes)
