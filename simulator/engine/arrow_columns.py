"""Arrow columns built straight from numpy buffers.

``pa.array`` and ``pa.Table.from_pylist`` import pandas the first time they run (pyarrow checks
whether its input is a pandas object), which is about 0.2 s of every run's start-up. A run's
tables hold only numbers and strings, so they are built here from buffers instead, with the
same types and values the pyarrow helpers give (``tests/simulator/test_arrow_columns.py``).
"""

from __future__ import annotations

import numbers

import numpy as np
import pyarrow as pa


def numeric(values, valid: np.ndarray | None = None) -> pa.Array:
    """A numeric or boolean column from an array [n] (``valid``: False where null)."""
    values = np.ascontiguousarray(values)
    n = values.size
    nulls = None
    null_count = 0
    if valid is not None and not valid.all():
        nulls = pa.py_buffer(np.packbits(valid, bitorder="little"))
        null_count = int(n - valid.sum())
    if values.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), n, [nulls, data], null_count=null_count)
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, n, [nulls, pa.py_buffer(values)], null_count=null_count)


def strings(texts: list[str], valid: np.ndarray | None = None) -> pa.Array:
    """A string column from Python strings (``valid``: False where null; those are "")."""
    encoded = [t.encode() for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    nulls = None
    null_count = 0
    if valid is not None and not valid.all():
        nulls = pa.py_buffer(np.packbits(valid, bitorder="little"))
        null_count = int(len(texts) - valid.sum())
    return pa.Array.from_buffers(
        pa.string(), len(texts),
        [nulls, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))], null_count=null_count,
    )  # fmt: skip


def dictionary(codes: np.ndarray, words: list[str]) -> pa.DictionaryArray:
    """A dictionary-encoded string column: int32 ``codes`` into ``words``."""
    return pa.DictionaryArray.from_arrays(numeric(codes.astype(np.int32)), strings(words or [""]))


def from_rows(rows: list[dict]) -> pa.Table:
    """As ``pa.Table.from_pylist(rows)``: the first row's columns, types inferred from the
    values (ints, floats, booleans, strings; None is null)."""
    if not rows:
        return pa.table({})
    return pa.table({name: _column([row.get(name) for row in rows]) for name in rows[0]})


def _column(values: list) -> pa.Array:
    present = [v for v in values if v is not None]
    valid = np.array([v is not None for v in values], dtype=bool)
    if not present:
        return pa.nulls(len(values))
    if all(isinstance(v, bool | np.bool_) for v in present):
        return numeric(np.array([bool(v) if v is not None else False for v in values]), valid)
    if all(isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)
           for v in present):  # fmt: skip
        return numeric(np.array([int(v) if v is not None else 0 for v in values], np.int64), valid)
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in present):
        filled = [float(v) if v is not None else 0.0 for v in values]
        return numeric(np.array(filled, dtype=np.float64), valid)
    if all(isinstance(v, str) for v in present):
        return strings([v if v is not None else "" for v in values], valid)
    return pa.array(values)  # anything else: pyarrow's own inference
