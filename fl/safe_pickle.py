"""Pickled data files read without running code from them.

CIFAR-10's "python version" batches are pickles. ``pickle.load`` on a downloaded file can run
any command the file names (through ``__reduce__``), so data pickles are read with an unpickler
that resolves only the globals the format needs: numpy's array reconstruction and dtypes, and
the builtins a dict of arrays, lists, strings and bytes uses. Anything else is refused before
it is called, with an error that names the file and the global it asked for.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

# (module, name) pairs a pickle of numpy arrays, lists, dicts, strings and bytes needs.
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("builtins", "tuple"),
        ("builtins", "bytes"),
        ("builtins", "bytearray"),
        ("_codecs", "encode"),  # bytes pickled by Python 2 (the CIFAR-10 batches) as protocol 2
    }
)


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside :data:`ALLOWED_GLOBALS`."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.path}: refused to load {module}.{name}: a data pickle may hold only numpy "
            "arrays, lists, dicts, strings and bytes"
        )


def load_data_pickle(path: str | Path) -> Any:
    """Unpickle a data file with the restricted unpickler. Raises :class:`UnsafePickleError`
    for a forbidden global, ``ValueError`` naming the file for anything that is not a pickle."""
    path = Path(path)
    with path.open("rb") as f:
        try:
            return _RestrictedUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as exc:
            raise ValueError(f"{path}: not a readable data pickle ({exc})") from None
