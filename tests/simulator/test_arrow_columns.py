"""Arrow columns from buffers are what pyarrow's own helpers give, without importing pandas."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pyarrow as pa

from simulator.engine import arrow_columns
from tests.conftest import same_table

ROWS = [
    {"n": 1, "x": 0.5, "mixed": 1, "s": "optimal", "none": None, "flag": True, "opt": None},
    {"n": 2, "x": math.nan, "mixed": 2.5, "s": None, "none": None, "flag": False, "opt": 3},
    {"n": np.int64(3), "x": np.float64(1.5), "mixed": 4, "s": "é", "none": None, "flag": True,
     "opt": 4, "extra": 1},  # a key the first row lacks is dropped, as by from_pylist
]  # fmt: skip


def test_rows_give_from_pylists_table():
    got = arrow_columns.from_rows(ROWS)
    want = pa.Table.from_pylist(ROWS)
    assert got.schema == want.schema
    assert same_table(got, want)
    assert arrow_columns.from_rows([]).num_columns == 0


def test_numeric_and_dictionary_columns():
    values = np.array([1.0, np.nan, 3.0])
    valid = np.array([True, False, True])
    got = arrow_columns.numeric(values, valid)
    assert got.to_pylist() == [1.0, None, 3.0] and got.null_count == 1
    flags = arrow_columns.numeric(
        np.array([True, False, True, True, False, False, True, True, True])
    )
    assert flags.to_pylist() == [True, False, True, True, False, False, True, True, True]
    words = arrow_columns.dictionary(np.array([2, 0, 0, 1]), ["a", "bb", ""])
    assert words.to_pylist() == ["", "a", "a", "bb"]
    assert words.type == pa.dictionary(pa.int32(), pa.string())


def test_a_run_never_imports_pandas(tmp_path):
    code = (
        "import sys; from simulator.loader import load_scenario;"
        "from simulator.engine.runner import run;"
        "run(load_scenario('scenarios/quickstart.yaml', {'simulation.rounds': 2}),"
        f" out_root={str(tmp_path)!r}); print('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
