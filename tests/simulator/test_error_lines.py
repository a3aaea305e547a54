"""Error messages as whole lines: the merge of union branches, a missing ``kind``, list-index
paths and the sweep's grouping of one mistake across points (fragments let mutants through)."""

from __future__ import annotations

import pytest
import yaml

from simulator.errors import ScenarioError
from simulator.studies.sweep import load_sweep_file
from tests.conftest import TINY, make_scenario


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            {"devices.cpu_hz": "fast"},  # a number or one of the distribution mappings
            "test: devices.cpu_hz: expected a number or a mapping, found 'fast'",
        ),
        (
            {"channel.allocator": {"solver": "cvxpy"}},
            "test: channel.allocator.kind: expected a 'kind' key, found none",
        ),
        (
            {"devices.cpu_hz": {"dist": "choice", "values": [1e8, "x"]}},
            "test: devices.cpu_hz.values[1]: expected a number, found 'x'",
        ),
        (
            {"channel.allocator": {"kind": "magic"}},
            "test: channel.allocator.kind: expected one of 'equal_share', 'proportional', "
            "'minmax_latency', 'joint_pruning', found 'magic'",
        ),
    ],
    ids=["or_merge", "missing_kind", "list_index", "unknown_kind"],
)
def test_scenario_errors_are_whole_lines(overrides, line):
    with pytest.raises(ScenarioError) as err:
        make_scenario(overrides)
    assert str(err.value) == line


def test_one_mistake_in_many_sweep_points_is_reported_once_with_a_count(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY))
    spec = {
        "name": "s",
        "base": "base.yaml",
        "seeds": [1, 2, 3],
        "grid": {"devices.count": [3, 4], "channel.uplink_bandwidth_hz": [-1.0]},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ScenarioError) as err:
        load_sweep_file(path)
    lines = str(err.value).splitlines()
    assert lines == [
        f"{path}: point (devices.count=3, channel.uplink_bandwidth_hz=-1.0, seed=1) and 5 more "
        "points: channel.uplink_bandwidth_hz: expected a number greater than or equal to 1, "
        "found -1.0"
    ]
