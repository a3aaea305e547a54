"""Data sets a user already has on disk, read without downloads and without torchvision.

* MNIST and Fashion-MNIST: the four IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), raw or
  ``.gz``, as distributed by LeCun et al. and Zalando;
* CIFAR-10: the "python version" batches ``data_batch_1`` .. ``data_batch_5`` and
  ``test_batch`` (pickles, read with :mod:`fl.safe_pickle`, which runs no code from the file);
* FEMNIST in LEAF's layout: ``train/*.json`` and ``test/*.json``, each ``{"users": [...],
  "user_data": {user: {"x": [[784 floats]], "y": [...]}}}``, one writer per device;
* ``arrays``: any ``.npz`` with ``x`` [N, ...] and ``y`` [N] (and optional ``device`` [N]).

A missing or malformed file raises :class:`DataFileError`, which names the path and what was
expected; the simulator turns it into a one-line error and exit code 2.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fl.safe_pickle import UnsafePickleError, load_data_pickle


class DataFileError(ValueError):
    """A data file that is missing or not in the expected format."""

    def __init__(self, path: Path | str, expected: str, found: str):
        self.path, self.expected, self.found = str(path), expected, found
        super().__init__(f"{path}: expected {expected}, found {found}")


@dataclass(frozen=True)
class ImagePool:
    """Images scaled to [0, 1] and labels, with the data set's own test split.

    ``train_x`` [N, C, H, W] float32, ``train_y`` [N] int64; ``test_*`` likewise (None when the
    files have no test split); ``writer`` [N] int64: the natural owner of each training example
    (FEMNIST's writers, an ``.npz``'s ``device``), or None; ``test_writer`` likewise.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    num_classes: int
    writer: np.ndarray | None = None
    test_writer: np.ndarray | None = None


# the IDX type byte -> numpy dtype (multi-byte types are big-endian)
IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataFileError(folder, f"{name} or {name}.gz", "no such file")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (raw or gzip) as an array with the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataFileError(path, "a readable IDX file", f"{type(exc).__name__}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataFileError(
            path, "an IDX file (magic 0x0000, a type byte, a rank)", "another header"
        )
    rank = raw[3]
    header = 4 + 4 * rank
    if len(raw) < header:
        raise DataFileError(path, f"{rank} dimension sizes after the magic", "a truncated header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFileError(
            path, f"{expected} bytes of data for shape {shape}", f"{len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def load_mnist_like(folder: str | Path) -> ImagePool:
    """MNIST or Fashion-MNIST from its four IDX files in ``folder``."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataFileError(folder, "a folder with the four IDX files", "no such folder")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataFileError(
                folder / f"{prefix}-images-idx3-ubyte",
                f"images [N, H, W] matching {len(labels)} labels",
                f"shape {images.shape}",
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DataFileError(
                folder / f"{prefix}-labels-idx1-ubyte",
                "labels 0..9",
                f"{labels.min()}..{labels.max()}",
            )
        parts[split] = (
            (images.astype(np.float32) / 255.0)[:, None],
            labels.astype(np.int64),
        )
    return ImagePool(*parts["train"], *parts["test"], num_classes=10)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = load_data_pickle(path)
    except UnsafePickleError as exc:
        raise DataFileError(
            path, "a CIFAR-10 batch of arrays and lists", str(exc).split(": ", 1)[1]
        ) from None
    except (OSError, ValueError) as exc:
        raise DataFileError(
            path, "a CIFAR-10 python batch (a pickle)", str(exc).split(": ", 1)[-1]
        ) from None
    if not isinstance(batch, dict):
        raise DataFileError(path, "a dict with b'data' and b'labels'", type(batch).__name__)
    data, labels = batch.get(b"data", batch.get("data")), batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DataFileError(
            path, "the keys b'data' and b'labels'", f"keys {sorted(map(str, batch))}"
        )
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataFileError(
            path, f"b'data' [N, 3072] for {len(labels)} labels", f"shape {data.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFileError(path, "labels 0..9", f"{labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


def load_cifar10(folder: str | Path) -> ImagePool:
    """CIFAR-10 from its python batches in ``folder`` (or its ``cifar-10-batches-py``)."""
    folder = Path(folder).expanduser()
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    if not folder.is_dir():
        raise DataFileError(
            folder, "a folder with data_batch_1..5 and test_batch", "no such folder"
        )
    train = []
    for i in range(1, 6):
        path = folder / f"data_batch_{i}"
        if not path.is_file():
            raise DataFileError(folder, f"data_batch_{i}", "no such file")
        train.append(_cifar_batch(path))
    if not (folder / "test_batch").is_file():
        raise DataFileError(folder, "test_batch", "no such file")
    test_x, test_y = _cifar_batch(folder / "test_batch")
    return ImagePool(
        np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
        test_x, test_y, num_classes=10,
    )  # fmt: skip


def _leaf_split(folder: Path) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataFileError(folder, "LEAF .json files", "none")
    users, xs, ys = [], [], []
    for path in files:
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
            names, data = blob["users"], blob["user_data"]
            for user in names:
                x = np.asarray(data[user]["x"], dtype=np.float32)
                y = np.asarray(data[user]["y"], dtype=np.int64)
                if x.ndim != 2 or x.shape[1] != 784 or len(x) != len(y):
                    raise DataFileError(
                        path, f"user {user!r}: x [n, 784] for {len(y)} labels", f"shape {x.shape}"
                    )
                users.append(user)
                xs.append(x)
                ys.append(y)
        except DataFileError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFileError(
                path, "LEAF JSON with users and user_data {x, y}", f"{type(exc).__name__}: {exc}"
            ) from None
    return users, xs, ys


def load_femnist(folder: str | Path) -> ImagePool:
    """FEMNIST in LEAF's JSON layout: ``train/`` and ``test/``; writers in sorted user order,
    each writer's examples tagged with its index (its device when writers become devices)."""
    folder = Path(folder).expanduser()
    for split in ("train", "test"):
        if not (folder / split).is_dir():
            raise DataFileError(folder, f"a {split}/ folder of LEAF .json files", "none")
    users, xs, ys = _leaf_split(folder / "train")
    test_users, txs, tys = _leaf_split(folder / "test")
    order = sorted(range(len(users)), key=users.__getitem__)
    index = {users[i]: rank for rank, i in enumerate(order)}
    test_index = [index.get(u, -1) for u in test_users]
    labels = np.concatenate(ys)
    if labels.size and (labels.min() < 0 or labels.max() > 61):
        raise DataFileError(
            folder / "train", "FEMNIST labels 0..61", f"{labels.min()}..{labels.max()}"
        )
    return ImagePool(
        train_x=np.concatenate([xs[i] for i in order]).reshape(-1, 1, 28, 28),
        train_y=np.concatenate([ys[i] for i in order]),
        test_x=np.concatenate(txs).reshape(-1, 1, 28, 28),
        test_y=np.concatenate(tys),
        num_classes=62,
        writer=np.concatenate([np.full(len(ys[i]), rank) for rank, i in enumerate(order)]),
        test_writer=np.concatenate(
            [np.full(len(t), w) for t, w in zip(tys, test_index, strict=True)]
        ),
    )


def load_arrays(path: str | Path) -> ImagePool:
    """An ``.npz`` with ``x`` [N, ...] (features or images, float) and ``y`` [N] int labels
    0..C-1, and optionally ``device`` [N] (the natural owner of each example)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataFileError(path, "an .npz file", "no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = {"x", "y"} - keys
            if missing:
                raise DataFileError(path, "the keys 'x' and 'y'", f"keys {sorted(keys)}")
            x, y = npz["x"], npz["y"]
            device = npz["device"] if "device" in keys else None
    except DataFileError:
        raise
    except (OSError, ValueError) as exc:
        raise DataFileError(
            path, "an .npz file of numeric arrays", f"{type(exc).__name__}: {exc}"
        ) from None
    if len(x) != len(y) or y.ndim != 1 or x.ndim < 2:
        raise DataFileError(path, "'x' [N, ...] and 'y' [N]", f"x {x.shape}, y {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise DataFileError(
            path, "'y' integer labels 0..C-1", f"{y.dtype} from {y.min() if y.size else '-'}"
        )
    if device is not None and (
        device.shape != y.shape or not np.issubdtype(device.dtype, np.integer)
    ):
        raise DataFileError(path, "'device' [N] integer ids", f"{device.dtype} {device.shape}")
    return ImagePool(
        x.astype(np.float32), y.astype(np.int64), None, None,
        num_classes=int(y.max()) + 1 if y.size else 0,
        writer=None if device is None else device.astype(np.int64),
    )  # fmt: skip
