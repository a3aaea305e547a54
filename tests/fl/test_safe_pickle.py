"""Data pickles cannot run code: the restricted unpickler refuses what the format does not need."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from fl.safe_pickle import UnsafePickleError, load_data_pickle


class RunsACommand:
    """What a malicious 'data batch' looks like: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": RunsACommand(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError) as err:
        load_data_pickle(path)
    assert str(err.value) == (
        f"{path}: refused to load posix.system: a data pickle may hold only numpy arrays, "
        "lists, dicts, strings and bytes"
    )
    assert not marker.exists()
    # the unrestricted unpickler would have run it: the test's payload is real
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_a_cifar_style_batch_loads(tmp_path):
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [3, 7],
        b"data": data,
        b"filenames": [b"a.png", b"b.png"],
    }
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    loaded = load_data_pickle(path)
    assert loaded[b"labels"] == [3, 7] and np.array_equal(loaded[b"data"], data)


def test_a_file_that_is_not_a_pickle_names_the_file(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match=f"^{path}: not a readable data pickle"):
        load_data_pickle(path)
