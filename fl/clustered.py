"""Clustered partitions: devices fall into G groups, each group sees its own shifted data.

The training pool is first split across all devices (IID or Dirichlet over labels); device k
belongs to group ``k mod G`` (balanced) and its examples are transformed by its group's shift:

* ``label_permutation``: ``y -> (y + g) mod C`` (``permutation: shift``), or a seeded random
  permutation of the classes per group (``permutation: random``; group 0 keeps the identity);
* ``rotation``: images rotated by ``360 g / G`` degrees counterclockwise (exact ``rot90`` for
  multiples of 90, bilinear interpolation otherwise);
* ``feature_noise``: ``x -> x + noise_std * z_g``, one fixed Gaussian pattern ``z_g`` per
  group (a covariate shift the group's devices share).

The global test split is every group's transform of the test pool, concatenated (global
accuracy is the mean over groups). The true group of every device is kept
(``FederatedData.device_groups``) for purity metrics and ``devices.parquet``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def device_groups(num_devices: int, groups: int) -> np.ndarray:
    """Group of each device, ndarray [n] int: ``k mod G``."""
    return np.arange(num_devices) % groups


def label_maps(groups: int, num_classes: int, permutation: str, rng: np.random.Generator):
    """Per group, the class map [C] applied to labels (group 0: the identity)."""
    maps = []
    for g in range(groups):
        if permutation == "shift":
            maps.append((np.arange(num_classes) + g) % num_classes)
        else:
            maps.append(np.arange(num_classes) if g == 0 else rng.permutation(num_classes))
    return maps


def rotate(images: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate images [N, C, H, W] counterclockwise by ``degrees``."""
    quarter, rest = divmod(degrees, 90.0)
    if rest == 0.0:
        return np.ascontiguousarray(np.rot90(images, int(quarter) % 4, axes=(-2, -1)))
    from scipy import ndimage  # imported on first use (rotation groups only)

    return ndimage.rotate(images, degrees, axes=(-2, -1), reshape=False, order=1, mode="constant")


def shift_examples(
    x: np.ndarray,
    y: np.ndarray,
    group: int,
    *,
    groups: int,
    shift: str,
    label_map: Sequence[np.ndarray],
    noise: Sequence[np.ndarray],
    noise_std: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The examples (x [N, ...], y [N]) as group ``group`` sees them."""
    if shift == "label_permutation":
        return x, np.asarray(label_map[group])[y]
    if shift == "rotation":
        if x.ndim != 4:
            raise ValueError("rotation needs images [N, C, H, W]; use feature_noise for vectors")
        return rotate(x, 360.0 * group / groups).astype(x.dtype), y
    return (x + noise_std * noise[group]).astype(x.dtype), y


def clustered_split(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    parts: list[np.ndarray],
    *,
    groups: int,
    shift: str,
    num_classes: int,
    permutation: str,
    noise_std: float,
    rng: np.random.Generator,
):
    """Apply each device's group shift to its part of the pool.

    Returns (train_x, train_y, parts, test_x, test_y, device_group) where the new training
    pool holds the devices' shifted examples one device after the other (``parts`` index it)
    and the test split holds every group's shifted copy of the test pool.
    """
    group_of = device_groups(len(parts), groups)
    maps = label_maps(groups, num_classes, permutation, rng)
    noise = [rng.standard_normal(train_x.shape[1:]).astype(np.float32) for _ in range(groups)]
    kw = dict(groups=groups, shift=shift, label_map=maps, noise=noise, noise_std=noise_std)
    xs, ys, new_parts, start = [], [], [], 0
    for k, idx in enumerate(parts):
        x, y = shift_examples(train_x[idx], train_y[idx], int(group_of[k]), **kw)
        xs.append(x)
        ys.append(y)
        new_parts.append(np.arange(start, start + len(idx)))
        start += len(idx)
    tests = [shift_examples(test_x, test_y, g, **kw) for g in range(groups)]
    return (
        np.concatenate(xs),
        np.concatenate(ys),
        new_parts,
        np.concatenate([t[0] for t in tests]),
        np.concatenate([t[1] for t in tests]),
        group_of,
    )
