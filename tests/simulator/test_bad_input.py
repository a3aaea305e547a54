"""Every user mistake: exit code 2, one line naming file, field path, expected and found;
never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simulator.cli import main

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"


def _scenario(tmp_path, mutate, name="bad.yaml"):
    data = yaml.safe_load(QUICKSTART.read_text())
    mutate(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


CASES = {
    "typo_key": (
        lambda d: d["channel"].__setitem__("uplink_bandwith_hz", 1e6),
        [
            "channel.uplink_bandwith_hz",
            "unknown key 'uplink_bandwith_hz'",
            "one of the keys aggregation, allocator, d2d, downlink, downlink_bandwidth_hz",
        ],
    ),
    "wrong_type": (
        lambda d: d["devices"].__setitem__("count", "many"),
        ["devices.count", "expected an integer", "found 'many'"],
    ),
    "negative_bandwidth": (
        lambda d: d["channel"].__setitem__("uplink_bandwidth_hz", -5),
        ["channel.uplink_bandwidth_hz", "expected a number greater than or equal to 1", "found -5"],
    ),
    "missing_field": (
        lambda d: d.pop("simulation"),
        ["simulation", "expected a value (this field is required)", "found nothing"],
    ),
    "unknown_kind": (
        lambda d: d["channel"].__setitem__("fading", {"kind": "nakagami"}),
        ["channel.fading.kind", "'none', 'rayleigh', 'rician'", "found 'nakagami'"],
    ),
    "nested_typo_under_a_union": (
        lambda d: d["channel"]["pathloss"].__setitem__("shadowing_db", 3),
        ["channel.pathloss.shadowing_db", "one of the keys kind, shadowing_std_db"],
    ),
    "async_setting_with_a_synchronous_strategy": (
        lambda d: d["simulation"].__setitem__("uplink_sharing", "reshare"),
        [
            "simulation.uplink_sharing",
            "expected equal_slots with the synchronous strategy 'fedavg'",
            "found 'reshare'",
        ],
    ),
    "incomplete_distribution": (
        lambda d: d["devices"].__setitem__("cpu_hz", {"dist": "uniform", "low": 1}),
        ["devices.cpu_hz.high", "required"],
    ),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_scenarios_exit_2_with_a_precise_message(tmp_path, capsys, case, command):
    mutate, expected = CASES[case]
    path = _scenario(tmp_path, mutate)
    args = [command, str(path)] + (["--out", str(tmp_path / "runs")] if command == "run" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing was run or written


def test_broken_yaml_syntax(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsimulation: {rounds: 3\ndevices:\n  count: 2\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: line 3, column 8: expected valid YAML, found a syntax error" in err


def test_missing_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert (
        "nope.yaml: expected an existing YAML file, found no such file" in capsys.readouterr().err
    )


def test_not_a_mapping(tmp_path, capsys):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    assert main(["validate", str(path)]) == 2
    assert "found a list" in capsys.readouterr().err


def test_several_problems_are_all_reported(tmp_path, capsys):
    def mutate(d):
        d["devices"]["count"] = -1
        d["channel"]["uplink_bandwidth_hz"] = "wide"

    assert main(["validate", str(_scenario(tmp_path, mutate))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert any("devices.count" in ln for ln in lines)
    assert any("channel.uplink_bandwidth_hz" in ln for ln in lines)


def test_bad_override_and_infeasible_split(tmp_path, capsys):
    assert main(["run", str(QUICKSTART), "--set", "nonsense"]) == 2
    assert "--set: nonsense: expected key.path=value" in capsys.readouterr().err
    out = str(tmp_path / "runs")
    assert main(["run", str(QUICKSTART), "--set", "devices.count=5000", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "quickstart.yaml: data: expected a split that gives every device data" in err
    assert "cannot give 5000 devices" in err and "Traceback" not in err


def test_override_with_a_bad_value_names_the_field(tmp_path, capsys):
    assert main(["validate", str(QUICKSTART)]) == 0
    capsys.readouterr()
    args = ["run", str(QUICKSTART), "--set", "channel.allocator.kind=magic", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "(with --set overrides): channel.allocator.kind" in err and "'magic'" in err
