import numpy as np
import pytest

from fl.datasets import load_digits_arrays, synthetic_fedprox
from fl.partition import partition_dirichlet, partition_iid, partition_shards


def test_digits_are_exactly_sklearns():
    from sklearn.datasets import load_digits

    x, y = load_digits_arrays()
    ref = load_digits()
    np.testing.assert_array_equal(x, ref.data)
    np.testing.assert_array_equal(y, ref.target)
    assert x.shape == (1797, 64)


def _labels(n=1000, classes=10, seed=0):
    return np.random.default_rng(seed).integers(0, classes, n)


def _is_partition(parts, n):
    joined = np.concatenate(parts)
    return len(joined) == n and len(np.unique(joined)) == n


def test_iid_partition_sizes():
    parts = partition_iid(103, 10, np.random.default_rng(0))
    assert _is_partition(parts, 103)
    assert {len(p) for p in parts} == {10, 11}


def test_dirichlet_partition_skews_labels_with_small_alpha():
    labels = _labels()
    rng = np.random.default_rng(1)
    skewed = partition_dirichlet(labels, 20, 0.1, rng)
    even = partition_dirichlet(labels, 20, 100.0, rng)
    assert _is_partition(skewed, 1000) and _is_partition(even, 1000)
    assert min(len(p) for p in skewed) >= 2

    def mean_classes(parts):
        return np.mean([len(np.unique(labels[p])) for p in parts])

    assert mean_classes(skewed) < 5 < mean_classes(even)


def test_dirichlet_impossible_split_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot give 600 devices at least 2"):
        partition_dirichlet(_labels(), 600, 0.5, np.random.default_rng(0))


def test_shards_give_each_device_few_labels():
    labels = _labels()
    parts = partition_shards(labels, 50, 2, np.random.default_rng(0))
    assert _is_partition(parts, 1000)
    assert max(len(np.unique(labels[p])) for p in parts) <= 4


def test_synthetic_fedprox_shapes_and_heterogeneity():
    data = synthetic_fedprox(
        num_devices=30,
        alpha=1.0,
        beta=1.0,
        dim=60,
        num_classes=10,
        samples_median=100,
        samples_sigma=0.5,
        test_fraction=0.2,
        rng=np.random.default_rng(0),
    )
    assert data.train_x.shape[1] == 60 and len(data.client_indices) == 30
    assert _is_partition(data.client_indices, len(data.train_y))
    assert len(set(data.num_examples().tolist())) > 5  # unequal sizes
    # each device's own model: label distributions differ across devices
    dists = [
        np.bincount(data.train_y[ix].numpy(), minlength=10) / len(ix) for ix in data.client_indices
    ]
    assert np.mean(np.std(dists, axis=0)) > 0.05
