"""Data sets from disk, on small files written here in exactly the formats users download:
IDX (raw and gzip), CIFAR-10 python batches, LEAF JSON, .npz. Plus the clustered partitions."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from fl.clustered import clustered_split, rotate
from fl.config import ArraysData, Cifar10Data, FemnistData, MnistData
from fl.data_files import DataFileError, load_arrays, load_cifar10, load_femnist, load_mnist_like
from fl.factory import make_data
from tests.conftest import TINY, run_wedge
from tests.fl.test_safe_pickle import RunsACommand


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)


def make_mnist(folder: Path, n_train=60, n_test=20, gz=False) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_train, 28, 28))
    labels = np.arange(n_train) % 10
    write_idx(folder / "train-images-idx3-ubyte", images, gz)
    write_idx(folder / "train-labels-idx1-ubyte", labels, gz)
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)), gz)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10, gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_mnist_idx_files(tmp_path, gz):
    images, labels = make_mnist(tmp_path, gz=gz)
    pool = load_mnist_like(tmp_path)
    assert pool.train_x.shape == (60, 1, 28, 28) and pool.train_x.dtype == np.float32
    assert pool.test_x.shape == (20, 1, 28, 28) and pool.train_y.dtype == np.int64
    np.testing.assert_array_equal(pool.train_x[:, 0], images.astype(np.float32) / 255.0)
    assert pool.train_y.tolist() == labels.tolist() and pool.num_classes == 10


def test_missing_and_malformed_idx_files_name_the_path(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataFileError) as err:
        load_mnist_like(tmp_path)
    assert str(err.value) == (
        f"{tmp_path}: expected t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz, "
        "found no such file"
    )
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(20) % 10)
    broken = tmp_path / "train-images-idx3-ubyte"
    broken.write_bytes(broken.read_bytes()[:-5])  # truncated
    with pytest.raises(DataFileError) as err:
        load_mnist_like(tmp_path)
    assert str(err.value) == (
        f"{broken}: expected {60 * 28 * 28} bytes of data for shape (60, 28, 28), "
        f"found {60 * 28 * 28 - 5}"
    )


def write_cifar(folder: Path, per_batch=8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": (np.arange(per_batch) % 10).tolist(),
            b"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar10_python_batches(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    pool = load_cifar10(tmp_path)  # the parent of cifar-10-batches-py works too
    assert pool.train_x.shape == (40, 3, 32, 32) and pool.test_x.shape == (8, 3, 32, 32)
    assert 0.0 <= pool.train_x.min() and pool.train_x.max() <= 1.0
    assert pool.train_y.tolist()[:10] == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]


def test_a_malicious_cifar_batch_exits_2_naming_the_file_and_runs_nothing(tmp_path):
    folder = tmp_path / "cifar"
    write_cifar(folder)
    marker = tmp_path / "pwned"
    evil = {b"data": RunsACommand(marker), b"labels": [0]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    scenario = {**TINY, "data": {"kind": "cifar10", "path": str(folder)}}
    scenario["model"] = {"kind": "mlp", "hidden": [8]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario))
    out = run_wedge("run", str(path), "--out", str(tmp_path / "o"))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (
        f"{path}: data.path: expected a CIFAR-10 batch of arrays and lists at "
        f"{folder / 'data_batch_3'}, found refused to load posix.system: a data pickle may hold "
        "only numpy arrays, lists, dicts, strings and bytes"
    )
    assert not marker.exists() and not (tmp_path / "o").exists()


def write_leaf(folder: Path) -> dict[str, int]:
    """Three writers in train/ (two files), their test data in test/."""
    sizes = {"f_b": 3, "f_a": 2, "f_c": 4}
    rng = np.random.default_rng(2)
    for split, names in (("train", [["f_b", "f_a"], ["f_c"]]), ("test", [["f_a", "f_b", "f_c"]])):
        (folder / split).mkdir(parents=True)
        for i, users in enumerate(names):
            data = {
                u: {
                    "x": rng.random((sizes[u], 784)).round(3).tolist(),
                    "y": [ord(u[-1]) - ord("a") + 60 * (split == "test")] * sizes[u],
                }
                for u in users
            }
            blob = {"users": users, "num_samples": [sizes[u] for u in users], "user_data": data}
            (folder / split / f"part_{i}.json").write_text(json.dumps(blob))
    return sizes


def test_femnist_leaf_writers_become_devices(tmp_path):
    sizes = write_leaf(tmp_path)
    pool = load_femnist(tmp_path)
    assert pool.train_x.shape == (9, 1, 28, 28) and pool.num_classes == 62
    data = make_data(FemnistData(kind="femnist", path=str(tmp_path)), 3, _rngs())
    # writers in sorted order: f_a, f_b, f_c; device k holds exactly writer k's examples
    assert [len(ix) for ix in data.client_indices] == [sizes["f_a"], sizes["f_b"], sizes["f_c"]]
    assert [sorted(set(data.train_y[ix].tolist())) for ix in data.client_indices] == [
        [0], [1], [2],
    ]  # fmt: skip
    with pytest.raises(ValueError, match="3 writers/owners in the data cannot give 4 devices"):
        make_data(FemnistData(kind="femnist", path=str(tmp_path)), 4, _rngs())


def _rngs():
    return lambda name: np.random.default_rng(abs(hash(name)) % 2**32)


def test_arrays_npz_with_and_without_devices(tmp_path):
    x = np.random.default_rng(3).random((40, 5)).astype(np.float32)
    y = np.arange(40) % 4
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y, device=np.arange(40) // 10)
    pool = load_arrays(path)
    assert pool.train_x.shape == (40, 5) and pool.num_classes == 4
    assert pool.writer.tolist() == (np.arange(40) // 10).tolist()
    cfg = ArraysData(kind="arrays", path=str(path), partition={"kind": "natural"})
    data = make_data(cfg, 4, _rngs())
    assert sum(len(ix) for ix in data.client_indices) == 32  # 20% went to the test split
    np.savez(tmp_path / "bad.npz", features=x, y=y)
    with pytest.raises(DataFileError) as err:
        load_arrays(tmp_path / "bad.npz")
    assert str(err.value) == (
        f"{tmp_path / 'bad.npz'}: expected the keys 'x' and 'y', found keys ['features', 'y']"
    )


def test_rotation_by_90_degrees_is_rot90():
    images = np.random.default_rng(4).random((3, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(rotate(images, 90.0), np.rot90(images, 1, axes=(-2, -1)))
    np.testing.assert_array_equal(rotate(images, 360.0), images)
    # counterclockwise: the top-right corner moves to the top-left
    one = np.zeros((1, 1, 3, 3), np.float32)
    one[0, 0, 0, 2] = 1.0
    assert rotate(one, 90.0)[0, 0, 0, 0] == 1.0


def test_clustered_label_permutation_and_groups_by_hand():
    x = np.arange(8, dtype=np.float32).reshape(8, 1)
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7]) % 10
    parts = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5]), np.array([6, 7])]
    tx, ty, new_parts, test_x, test_y, group = clustered_split(
        x, y, x[:2], y[:2], parts, groups=2, shift="label_permutation", num_classes=10,
        permutation="shift", noise_std=0.5, rng=np.random.default_rng(0),
    )  # fmt: skip
    assert group.tolist() == [0, 1, 0, 1]
    # group 1 sees y -> (y + 1) mod 10
    assert ty.tolist() == [0, 1, 3, 4, 4, 5, 7, 8]
    assert [p.tolist() for p in new_parts] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert test_y.tolist() == [0, 1, 1, 2] and test_x.shape == (4, 1)


def test_clustered_digits_record_the_true_group_in_devices_parquet(tmp_path):
    from simulator.engine.runner import run
    from tests.conftest import make_scenario

    clustered = {"kind": "clustered", "groups": 2, "shift": "rotation"}
    scenario = make_scenario(
        {"data.partition": clustered, "simulation.rounds": 1, "data.local_test_fraction": 0.25}
    )
    result = run(scenario, out_root=tmp_path)
    table = result.devices.to_pandas()
    assert table.true_group.tolist() == [0, 1, 0, 1]
    assert result.summary["final_accuracy"] is not None


def test_clustered_runs_report_accuracy_per_true_group():
    """The per-group columns are the final model evaluated on each group's own data, by hand."""
    import torch

    from fl.evaluation import evaluate, evaluate_per_device
    from simulator.engine.runner import simulate
    from tests.conftest import make_scenario

    clustered = {"kind": "clustered", "groups": 2, "shift": "label_permutation"}
    scenario = make_scenario(
        {"data.partition": clustered, "simulation.rounds": 2, "data.local_test_fraction": 0.25}
    )
    recorder, ctx, _ = simulate(scenario)
    rows = recorder.metrics_table().to_pandas()
    groups = ["accuracy_group0", "accuracy_group1"]
    personal = ["personal_accuracy_group0", "personal_accuracy_group1"]
    assert set(groups + personal) <= set(rows.columns)
    last = rows.iloc[-1]
    world = ctx.world
    data = world.data
    half = len(data.test_y) // 2  # the test split is group 0's copy, then group 1's
    for g in range(2):
        part = slice(g * half, (g + 1) * half)
        by_hand = evaluate(world.model, world.global_state, data.test_x[part], data.test_y[part])
        assert last[f"accuracy_group{g}"] == by_hand.accuracy
    assert last["accuracy"] == pytest.approx(np.mean(last[groups]), abs=1e-12)
    own = evaluate_per_device(
        world.model,
        {k: v.unsqueeze(0).expand(4, *v.shape) for k, v in world.global_state.items()},
        data.train_x,
        data.train_y,
        data.client_test_indices,
    ).numpy()
    assert last["personal_accuracy_group0"] == pytest.approx(own[[0, 2]].mean(), abs=1e-12)
    assert last["personal_accuracy_group1"] == pytest.approx(own[[1, 3]].mean(), abs=1e-12)
    assert isinstance(data.test_x, torch.Tensor)


def test_evaluate_per_group_by_hand():
    """Identity logits: example i is right when its label is its argmax; groups counted apart."""
    import torch
    from torch import nn

    from fl.evaluation import evaluate

    model = nn.Linear(2, 2, bias=False)
    state = {"weight": torch.eye(2)}
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 0, 1, 1])  # right, wrong, right, right, wrong
    ev = evaluate(model, state, x, y, np.array([0, 0, 1, 1, 1]))
    assert ev.accuracy == pytest.approx(3 / 5)
    assert ev.group_accuracy == (0.5, 2 / 3)


def test_mnist_scenario_from_files_runs(tmp_path):
    make_mnist(tmp_path / "mnist", n_train=80, n_test=20, gz=True)
    cfg = MnistData.model_validate(
        {"kind": "mnist", "path": str(tmp_path / "mnist"), "partition": {"kind": "iid"}}
    )
    data = make_data(cfg, 4, _rngs())
    assert data.train_x.shape == (80, 1, 28, 28) and len(data.client_indices) == 4
    assert isinstance(Cifar10Data(kind="cifar10", path="x"), Cifar10Data)
