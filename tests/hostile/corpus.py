# ruff: noqa: E501  (a table of cases reads best one case per line)
"""A corpus of hostile inputs: scenario, sweep and comparison files, ``--set`` values and
result folders, each with the outcome a user should get (issue 11).

Cases are generated, not hand-listed: every numeric field meets negatives, zero, huge values
and NaN/infinity; every file type meets YAML bombs, deep nesting, huge numbers, duplicate keys
and wrong shapes; cross-field rules are broken inside sweep points and comparison variants.
``expect`` is ``reject`` (exit 2, every stderr line names the file and ``field`` appears),
``ok`` (exit 0 with a meaningful result) or ``problem`` (exit 1, the run says why).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.conftest import TINY

BAD_NUMBERS = {"negative": -5, "zero": 0, "huge": 1e300}
NON_FINITE = {"nan": ".nan", "inf": ".inf", "minus_inf": "-.inf"}

# (dotted path, bad values that must be rejected); every one is a number with a physical bound
NUMERIC_FIELDS: dict[str, tuple[str, ...]] = {
    "seed": ("negative", "huge"),
    "simulation.rounds": ("negative", "zero", "huge"),
    "simulation.deadline_s": ("negative", "zero", "huge"),
    "simulation.max_time_s": ("negative", "zero", "huge"),
    "simulation.idle_retry_s": ("negative", "zero", "huge"),
    "simulation.concurrency": ("negative", "zero", "huge"),
    "simulation.target_accuracy": ("negative", "zero", "huge"),
    "devices.count": ("negative", "zero", "huge"),
    "devices.cpu_hz": ("negative", "zero", "huge"),
    "devices.cycles_per_sample": ("negative", "zero", "huge"),
    "devices.cycles_per_flop": ("negative", "zero", "huge"),
    "devices.tx_power_dbm": ("huge",),
    "devices.kappa": ("negative", "zero", "huge"),
    "devices.placement.radius_m": ("negative", "zero", "huge"),
    "devices.placement.min_radius_m": ("negative",),
    "channel.noise_psd_dbm_per_hz": ("huge",),
    "channel.uplink_bandwidth_hz": ("negative", "zero", "huge"),
    "channel.downlink_bandwidth_hz": ("negative", "zero", "huge"),
    "channel.server_tx_power_dbm": ("huge",),
    "channel.pathloss.shadowing_std_db": ("negative", "huge"),
    "training.local_steps": ("negative", "zero", "huge"),
    "training.batch_size": ("negative", "zero", "huge"),
    "training.lr": ("negative", "zero"),
    "training.eval_every": ("negative", "zero"),
    "training.divergence_loss_ratio": ("negative", "zero"),
    "bits_per_param": ("negative", "zero", "huge"),
    "data.test_fraction": ("negative", "zero", "huge"),
    "data.local_test_fraction": ("negative", "zero", "huge"),
}
# float fields where NaN / infinity must be refused
FLOAT_FIELDS = [
    "devices.cpu_hz", "devices.cycles_per_sample", "devices.tx_power_dbm", "devices.kappa",
    "devices.placement.radius_m", "channel.noise_psd_dbm_per_hz", "channel.uplink_bandwidth_hz",
    "channel.downlink_bandwidth_hz", "channel.server_tx_power_dbm",
    "channel.pathloss.shadowing_std_db", "training.lr", "simulation.deadline_s",
    "simulation.max_time_s", "data.test_fraction",
]  # fmt: skip
# whole sections replaced (paths inside them named in the expectation)
SECTION_CASES: list[tuple[str, str, dict]] = [
    ("uniform_negative_low", "devices.cpu_hz", {"devices.cpu_hz": {"dist": "uniform", "low": -1e9, "high": 1e9}}),
    ("uniform_inf_high", "devices.cpu_hz", {"devices.cpu_hz": {"dist": "uniform", "low": 1e8, "high": ".inf"}}),
    ("uniform_reversed", "devices.cpu_hz", {"devices.cpu_hz": {"dist": "uniform", "low": 1e9, "high": 1e8}}),
    ("choice_inf_weight", "devices.cpu_hz", {"devices.cpu_hz": {"dist": "choice", "values": [1e9, 2e9], "weights": [".inf", 1]}}),
    ("choice_zero_weights", "devices.cpu_hz", {"devices.cpu_hz": {"dist": "choice", "values": [1e9], "weights": [0]}}),
    ("choice_negative_value", "devices.kappa", {"devices.kappa": {"dist": "choice", "values": [-1e-28]}}),
    ("lognormal_nan_sigma", "devices.cpu_hz", {"devices.cpu_hz": {"dist": "lognormal", "median": 1e9, "sigma": ".nan"}}),
    ("lognormal_negative_median", "devices.cpu_hz", {"devices.cpu_hz": {"dist": "lognormal", "median": -1, "sigma": 1}}),
    ("min_radius_above_radius", "devices.placement", {"devices.placement": {"kind": "disc", "radius_m": 100, "min_radius_m": 300}}),
    ("markov_1e-12", "devices.availability.mean_online_s", {"devices.availability": {"kind": "markov", "mean_online_s": 1e-12, "mean_offline_s": 1e-12}}),
    ("coherence_1e-300", "channel.fading.coherence_s", {"channel.fading": {"kind": "rayleigh", "coherence_s": 1e-300}}),
    ("rician_inf_k", "channel.fading.k_factor", {"channel.fading": {"kind": "rician", "k_factor": ".inf"}}),
    ("bandwidth_1e-300", "channel.uplink_bandwidth_hz", {"channel.uplink_bandwidth_hz": 1e-300}),
    ("bits_1e26", "bits_per_param", {"bits_per_param": 1e26}),
    ("hidden_1e6", "model.hidden", {"model.hidden": [1000000, 1000000]}),
    ("hidden_too_wide_total", "model.hidden", {"model.hidden": [8000, 8000, 8000]}),
    ("count_1e9", "devices.count", {"devices.count": 1e9}),
    ("long_name", "name", {"name": "n" * 300}),
    ("name_with_slash", "name", {"name": "../escape"}),
    ("synthetic_huge", "data.samples_median", {"data": {"kind": "synthetic", "samples_median": 1000000}, "devices.count": 100000}),
    ("pathloss_nan_exponent", "channel.pathloss.exponent", {"channel.pathloss": {"kind": "log_distance", "exponent": ".nan"}}),
    ("pathloss_inf_ref", "channel.pathloss.ref_loss_db", {"channel.pathloss": {"kind": "log_distance", "ref_loss_db": "-.inf"}}),
    ("unknown_kind", "strategy.kind", {"strategy": {"kind": "fedsgd"}}),
    ("unknown_key", "devices.cpu_ghz", {"devices.cpu_ghz": 1}),
    ("string_for_number", "devices.cpu_hz", {"devices.cpu_hz": "fast"}),
    ("list_for_mapping", "channel", {"channel": [1, 2]}),
    ("mapping_for_number", "simulation.rounds", {"simulation.rounds": {"a": 1}}),
    ("bool_for_count", "devices.count", {"devices.count": "yes please"}),
    ("missing_strategy", "strategy", {"strategy": None}),
    ("missing_devices", "devices", {"devices": None}),
    ("adaptive_without_joint", "channel.allocator.kind", {"strategy": {"kind": "pruned_personalized", "rho": "adaptive"}}),
    ("joint_without_adaptive", "strategy.rho", {"channel.allocator": {"kind": "joint_pruning", "t_max_s": 5}}),
    ("concurrency_with_fedavg", "simulation.concurrency", {"simulation.concurrency": 2}),
    ("reshare_with_fedavg", "simulation.uplink_sharing", {"simulation.uplink_sharing": "reshare"}),
    ("d2d_without_relay", "channel.d2d", {"channel.d2d": {}}),
    ("broadcast_async", "channel.downlink.mode", {"strategy": {"kind": "fedasync"}, "channel.downlink": {"mode": "broadcast"}}),
    ("cuda_without_gpu", "training.device", {"training.device": "cuda"}),
    ("data_path_missing", "data.path", {"data": {"kind": "mnist", "path": "/nonexistent/mnist"}}),
    ("trace_path_missing", "devices.availability.path", {"devices.availability": {"kind": "trace", "path": "/nonexistent/online.csv"}}),
    ("table_path_missing", "devices.source.path", {"devices.source": {"kind": "table", "path": "/nonexistent/dev.csv"}}),
    ("both_steps_and_epochs", "training", {"training.local_epochs": 2}),
    ("more_devices_than_data", "data", {"devices.count": 5000}),
    ("clients_and_fraction", "strategy", {"strategy": {"kind": "fedavg", "clients_per_round": 2, "fraction": 0.5}}),
    ("groups_too_many", "data.partition.groups", {"data.partition": {"kind": "clustered", "groups": 100000}}),
    ("rotation_on_vectors", "data", {"data": {"kind": "synthetic", "partition": {"kind": "clustered", "shift": "rotation"}}}),
    ("speed_inf", "devices.mobility.speed_mps", {"devices.mobility": {"kind": "random_waypoint", "speed_mps": [1, ".inf"]}}),
    ("mobility_update_tiny", "devices.mobility.update_s", {"devices.mobility": {"kind": "random_waypoint", "update_s": 1e-9}}),
    ("profiles_inf_mean", "devices.round_time.profiles", {"devices.round_time": {"kind": "normal_profiles", "profiles": [{"mean_s": ".inf", "std_s": 1}]}}),
    ("staleness_inf", "strategy.staleness.a", {"strategy": {"kind": "fedasync", "staleness": {"kind": "polynomial", "a": ".inf"}}}),
    ("fedbuff_lr_nan", "strategy.server_lr", {"strategy": {"kind": "fedbuff", "server_lr": ".nan"}}),
    ("t_max_inf", "channel.allocator.t_max_s", {"strategy": {"kind": "pruned_personalized"}, "channel.allocator": {"kind": "joint_pruning", "t_max_s": ".inf"}}),
    ("cells_count_huge", "cells.count", {"cells": {"count": 1e6}}),
    ("cells_isd_negative", "cells.isd_m", {"cells": {"count": 2, "isd_m": -5}}),
    ("cells_backhaul_nan", "cells.backhaul_bps", {"cells": {"count": 2, "backhaul_bps": ".nan"}}),
    ("cells_backhaul_zero", "cells.backhaul_bps", {"cells": {"count": 2, "backhaul_bps": 0}}),
    ("cells_explicit_mismatch", "cells", {"cells": {"count": 3, "layout": "explicit", "positions_m": [[0, 0]]}}),
    ("cells_position_inf", "cells.positions_m", {"cells": {"count": 1, "layout": "explicit", "positions_m": [[0, ".inf"]]}}),
    ("cells_reuse_2", "cells.reuse", {"cells": {"count": 2, "reuse": 2}}),
    ("hierfavg_without_cells", "cells", {"strategy": {"kind": "hierfavg"}}),
    ("hierfavg_edge_rounds_zero", "strategy.edge_rounds", {"strategy": {"kind": "hierfavg", "edge_rounds": 0}, "cells": {"count": 2}}),
    ("cells_with_async", "cells", {"cells": {"count": 2}, "strategy": {"kind": "fedasync"}}),
    ("aircomp_with_scaffold", "channel.aggregation.kind", {"channel.aggregation": {"kind": "over_the_air"}, "strategy": {"kind": "scaffold"}}),
    ("aircomp_with_cells", "channel.aggregation.kind", {"channel.aggregation": {"kind": "over_the_air"}, "cells": {"count": 2}}),
    ("aircomp_threshold_inf", "channel.aggregation.snr_threshold_db", {"channel.aggregation": {"kind": "over_the_air", "snr_threshold_db": ".inf"}}),
    ("aircomp_error_negative", "channel.aggregation.estimation_error", {"channel.aggregation": {"kind": "over_the_air", "estimation_error": -0.1}}),
    ("selection_with_async", "selection", {"selection": {"kind": "random"}, "strategy": {"kind": "fedbuff"}}),
    ("selection_and_strategy_cohort", "strategy.clients_per_round", {"selection": {"kind": "random"}, "strategy": {"kind": "fedavg", "clients_per_round": 2}}),
    ("selection_budget_negative", "selection.budget_j", {"selection": {"kind": "energy_aware", "budget_j": -1}}),
    ("selection_budget_nan", "selection.budget_j", {"selection": {"kind": "energy_aware", "budget_j": ".nan"}}),
    ("oort_systems_only", "selection.kind", {"training": "none", "selection": {"kind": "oort"}}),
    ("oort_epsilon_two", "selection.epsilon", {"selection": {"kind": "oort", "epsilon": 2}}),
    ("selection_with_coalitions", "selection", {"selection": {"kind": "random"}, "strategy": {"kind": "coalitions"}}),
    ("server_lr_zero", "strategy.server_optimizer.lr", {"strategy": {"kind": "fedavg", "server_optimizer": {"kind": "adam", "lr": 0}}}),
    ("server_betas_one", "strategy.server_optimizer.betas", {"strategy": {"kind": "fedavg", "server_optimizer": {"kind": "yogi", "betas": [1, 1]}}}),
    ("fedprox_mu_negative", "strategy.mu", {"strategy": {"kind": "fedprox", "mu": -1}}),
    ("fedprox_mu_inf", "strategy.mu", {"strategy": {"kind": "fedprox", "mu": ".inf"}}),
]  # fmt: skip
# scenarios that must run and say something true
RUN_CASES: list[tuple[str, str, dict]] = [
    ("fedbuff_buffer_above_count", "ok", {"strategy": {"kind": "fedbuff", "buffer_size": 10}, "simulation.rounds": 2}),
    ("diverging_lr", "problem", {"training.lr": 1e4}),
    ("nobody_can_deliver", "problem", {"devices.tx_power_dbm": -100, "simulation.deadline_s": 1, "channel.allocator": {"kind": "equal_share"}}),
    ("systems_only", "ok", {"training": "none"}),
    ("empty_trace_ends", "problem", {"devices.availability": {"kind": "trace", "path": "@empty_trace"}, "simulation.max_time_s": 50}),
    ("empty_trace_no_time_limit", "problem", {"devices.availability": {"kind": "trace", "path": "@empty_trace"}}),
    ("trace_all_offline_later", "problem", {"devices.availability": {"kind": "trace", "path": "@empty_trace"}, "strategy": {"kind": "fedasync"}}),
    ("energy_budget_nobody", "problem", {"selection": {"kind": "energy_aware", "budget_j": 1e-12}}),
    ("aircomp_nobody_over_threshold", "problem", {"channel.aggregation": {"kind": "over_the_air", "snr_threshold_db": 100}}),
    ("interference_limited_cells", "ok", {"cells": {"count": 3, "reuse": 1}, "simulation.rounds": 2}),
]  # fmt: skip


@dataclass
class Case:
    """One hostile input: files to write, the command, and what must happen."""

    case_id: str
    klass: str  # the class this probes
    argv: list[str]  # with {dir} for the case's own folder
    expect: str  # reject | ok | problem
    files: dict[str, str | bytes] = field(default_factory=dict)
    name: str = ""  # what every stderr line must name (a file or folder); {dir} allowed
    field_path: str = ""  # must appear in stderr (reject)


def _set(data: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(data)
    node = out
    parts = dotted.split(".")
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return out


def _yaml(data: dict) -> str:
    """YAML with ``.nan`` / ``.inf`` strings written as YAML's own non-finite floats."""
    text = yaml.safe_dump(data, sort_keys=False)
    for token in (".nan", ".inf", "-.inf"):
        text = text.replace(f"'{token}'", token)
    return text


def _scenario_case(case_id: str, klass: str, overrides: dict, field_path: str, expect="reject"):
    data = copy.deepcopy(TINY)
    for path, value in overrides.items():
        data = _set(data, path, value)
    return Case(case_id, klass, ["run", "{dir}/s.yaml", "--out", "{dir}/runs"], expect,
                {"s.yaml": _yaml(data)}, "{dir}/s.yaml", field_path)  # fmt: skip


def _validate_too(case: Case) -> Case:
    return Case(case.case_id + "/validate", case.klass, ["validate", "{dir}/s.yaml"],
                case.expect, case.files, case.name, case.field_path)  # fmt: skip


def _bomb(depth: int = 9) -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, depth):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nname: *a{depth - 1}\n"


def _sweep(grid: dict, base_overrides: dict | None = None) -> dict[str, str]:
    base = copy.deepcopy(TINY)
    for path, value in (base_overrides or {}).items():
        base = _set(base, path, value)
    sweep = {"name": "hostile", "base": "base.yaml", "seeds": [0], "grid": grid}
    return {"base.yaml": _yaml(base), "sweep.yaml": _yaml(sweep)}


def _comparison(variants: dict) -> dict[str, str]:
    spec = {"base": "base.yaml", "seeds": [0], "reference": next(iter(variants)),
            "variants": variants}  # fmt: skip
    return {"base.yaml": _yaml(TINY), "cmp.yaml": _yaml(spec)}


def build_corpus() -> list[Case]:
    cases: list[Case] = []
    # 1. physical bounds, in the file and through --set
    for path, kinds in NUMERIC_FIELDS.items():
        for kind in kinds:
            value = BAD_NUMBERS[kind]
            c = _scenario_case(f"bounds/{path}={kind}", "1 bounds", {path: value}, path)
            cases += [c, _validate_too(c)]
            cases.append(Case(f"bounds/--set {path}={kind}", "1 bounds",
                              ["run", "{dir}/s.yaml", "--set", f"{path}={value}", "--out", "{dir}/runs"],
                              "reject", {"s.yaml": _yaml(TINY)}, "{dir}/s.yaml", path))  # fmt: skip
    # 2. NaN and infinity
    for path in FLOAT_FIELDS:
        for kind, token in NON_FINITE.items():
            c = _scenario_case(f"nonfinite/{path}={kind}", "2 non-finite", {path: token}, path)
            cases += [c, _validate_too(c)]
            cases.append(Case(f"nonfinite/--set {path}={kind}", "2 non-finite",
                              ["run", "{dir}/s.yaml", "--set", f"{path}={token}", "--out", "{dir}/runs"],
                              "reject", {"s.yaml": _yaml(TINY)}, "{dir}/s.yaml", path))  # fmt: skip
    # sections, cross-field rules and late failures
    for case_id, path, overrides in SECTION_CASES:
        klass = "4 late failures" if case_id in {"long_name", "bits_1e26", "bandwidth_1e-300",
            "coherence_1e-300", "uniform_inf_high", "choice_inf_weight"} else "1 bounds"  # fmt: skip
        if case_id.startswith(("hidden", "count", "synthetic")):
            klass = "3 resource bombs"
        if case_id.startswith(("markov", "mobility_update")):
            klass = "5 never ends"
        c = _scenario_case(f"section/{case_id}", klass, overrides, path)
        cases += [c, _validate_too(c)]
    # 3. resource bombs in every file type
    big_int = "9" * 5000
    raw_files = {
        "alias_bomb": _bomb(),
        "deep_nesting": "name: " + "[" * 5000 + "]" * 5000 + "\n",
        "deep_mapping": "".join(f"{' ' * i}k{i}:\n" for i in range(400)) + " " * 400 + "v: 1\n",
        "huge_integer": _yaml(TINY).replace("seed: 1", f"seed: {big_int}"),
        "duplicate_key": _yaml(TINY) + "seed: 2\n",
        "duplicate_nested_key": _yaml(TINY).replace("devices:\n", "devices:\n  count: 3\n", 1),
        "empty_file": "",
        "just_a_list": "- 1\n- 2\n",
        "just_a_string": "hello\n",
        "syntax_error": "name: [unclosed\n",
        "tab_indent": "name: x\n\tseed: 1\n",
        "huge_string_name": "name: " + "x" * 2_000_000 + "\n",
        "long_list": "name: x\nmodel:\n  kind: mlp\n  hidden: ["
        + ", ".join(["8"] * 100_000)
        + "]\n",
    }
    for case_id, text in raw_files.items():
        klass = "9 smaller" if "duplicate" in case_id else "3 resource bombs"
        for command in (
            ["run", "{dir}/s.yaml", "--out", "{dir}/runs"],
            ["validate", "{dir}/s.yaml"],
        ):
            cases.append(Case(f"yaml/{case_id}/{command[0]}", klass, command, "reject",
                              {"s.yaml": text}, "{dir}/s.yaml"))  # fmt: skip
        for kind, command in (("sweep", ["sweep", "{dir}/sw.yaml", "--out", "{dir}/runs"]),
                              ("compare", ["compare", "{dir}/sw.yaml", "--out", "{dir}/runs"])):  # fmt: skip
            cases.append(Case(f"yaml/{case_id}/{kind}", klass, command, "reject",
                              {"sw.yaml": text}, "{dir}/sw.yaml"))  # fmt: skip
    cases.append(Case("yaml/binary_file", "3 resource bombs", ["validate", "{dir}/s.yaml"], "reject",
                      {"s.yaml": bytes(range(256)) * 4}, "{dir}/s.yaml"))  # fmt: skip
    cases.append(Case("yaml/not_utf8", "3 resource bombs", ["run", "{dir}/s.yaml", "--out", "{dir}/r"],
                      "reject", {"s.yaml": "name: caf\xe9\n".encode("latin-1")}, "{dir}/s.yaml"))  # fmt: skip
    cases.append(Case("yaml/a_directory", "9 smaller", ["run", "{dir}", "--out", "{dir}/r"], "reject",
                      {}, "{dir}"))  # fmt: skip
    cases.append(Case("yaml/no_such_file", "9 smaller", ["validate", "{dir}/nope.yaml"], "reject",
                      {}, "{dir}/nope.yaml"))  # fmt: skip
    for bad in ("seed=" + big_int, "model.hidden=[1000000, 1000000]", "devices.count=1e9",
                "name=" + "x" * 500, "devices=3", "a..b=1", "noequals", "devices.count.x=1"):  # fmt: skip
        cases.append(Case(f"--set/{bad[:30]}", "1 bounds",
                          ["run", "{dir}/s.yaml", "--set", bad, "--out", "{dir}/runs"], "reject",
                          {"s.yaml": _yaml(TINY)}, ""))  # fmt: skip
    # sweeps: bombs and rules broken inside points
    sweep_cases = {
        "grid_1e8": ({"devices.count": list(range(1, 101)), "seed": list(range(100)),
                      "training.lr": [0.1 * (i + 1) for i in range(100)], "training.batch_size": list(range(1, 101))}, {}, "grid"),
        "point_negative": ({"devices.cpu_hz": [1e9, -1]}, {}, "devices.cpu_hz"),
        "point_nan": ({"channel.uplink_bandwidth_hz": [1e6, ".nan"]}, {}, "channel.uplink_bandwidth_hz"),
        "point_cross_field": ({"simulation.concurrency": [1, 2]}, {}, "simulation.concurrency"),
        "point_joint_without_adaptive": ({"channel.allocator.kind": ["equal_share", "joint_pruning"]}, {"channel.allocator.t_max_s": 5}, "channel.allocator"),
        "point_missing_file": ({"data.path": ["/nope/a", "/nope/b"]}, {"data.kind": "mnist"}, "data.path"),
        "point_cuda": ({"training.device": ["cpu", "cuda"]}, {}, "training.device"),
        "point_d2d": ({"channel.d2d.band.kind": ["dedicated"]}, {"channel.d2d.band.bandwidth_hz": 1e6}, "channel.d2d"),
        "point_long_name": ({"name": ["y" * 300]}, {}, "name"),
        "point_min_radius": ({"devices.placement.min_radius_m": [400]}, {}, "devices.placement"),
    }  # fmt: skip
    for case_id, (grid, base_over, path) in sweep_cases.items():
        files = _sweep(grid, base_over)
        for command in (
            ["sweep", "{dir}/sweep.yaml", "--out", "{dir}/runs"],
            ["validate", "{dir}/sweep.yaml"],
        ):
            cases.append(Case(f"sweep/{case_id}/{command[0]}", "4 late failures", command, "reject",
                              files, "{dir}/sweep.yaml", path))  # fmt: skip
    # comparisons: variants that break a rule
    variants = {
        "negative": ({"a": {}, "b": {"devices.cpu_hz": -1}}, "devices.cpu_hz"),
        "nan": ({"a": {}, "b": {"training.lr": ".nan"}}, "training.lr"),
        "cross_field": ({"a": {}, "b": {"simulation.concurrency": 2}}, "simulation.concurrency"),
        "joint": (
            {"a": {}, "b": {"channel.allocator": {"kind": "joint_pruning", "t_max_s": 5}}},
            "strategy.rho",
        ),
        "cuda": ({"a": {}, "b": {"training.device": "cuda"}}, "training.device"),
        "missing_data": (
            {"a": {}, "b": {"data": {"kind": "cifar10", "path": "/nope"}}},
            "data.path",
        ),
        "d2d": ({"a": {}, "b": {"channel.d2d": {}}}, "channel.d2d"),
        "unknown_key": ({"a": {}, "b": {"devices.gpu": 1}}, "devices.gpu"),
    }
    for case_id, (vs, path) in variants.items():
        files = _comparison(vs)
        for command in (
            ["compare", "{dir}/cmp.yaml", "--out", "{dir}/runs"],
            ["validate", "{dir}/cmp.yaml"],
        ):
            cases.append(Case(f"compare/{case_id}/{command[0]}", "4 late failures", command, "reject",
                              files, "{dir}/cmp.yaml", path))  # fmt: skip
    # a valid comparison file validates
    cases.append(Case("compare/valid/validate", "9 smaller", ["validate", "{dir}/cmp.yaml"], "ok",
                      _comparison({"a": {}, "b": {"training.lr": 0.2}})))  # fmt: skip
    # 6. output folder faults
    for case_id, out in (
        ("out_is_file", "{dir}/blocker"),
        ("out_below_file", "{dir}/blocker/runs"),
    ):
        for command in ("run", "sweep", "compare"):
            src = {"run": "s.yaml", "sweep": "sweep.yaml", "compare": "cmp.yaml"}[command]
            files = {"s.yaml": _yaml(TINY), "blocker": "x", **_sweep({"seed": [1]}),
                     **_comparison({"a": {}, "b": {"training.lr": 0.2}})}  # fmt: skip
            cases.append(Case(f"out/{case_id}/{command}", "6 output folder", [command, "{dir}/" + src,
                              "--out", out], "reject", files, "{dir}/blocker", "--out"))  # fmt: skip
    # result folders handed to report
    cases.append(Case("report/corrupt_parquet", "9 smaller", ["report", "{dir}/run"], "reject",
                      {"run/metrics.parquet": b"PAR1 not really", "run/summary.json": "{}",
                       "run/events.parquet": b"garbage", "run/devices.parquet": b"x",
                       "run/scenario.resolved.yaml": _yaml(TINY)}, "{dir}/run"))  # fmt: skip
    cases.append(Case("report/empty_folder", "9 smaller", ["report", "{dir}/run"], "reject",
                      {"run/.keep": ""}, "{dir}/run"))  # fmt: skip
    cases.append(Case("report/missing", "9 smaller", ["report", "{dir}/nothing"], "reject", {},
                      "{dir}/nothing"))  # fmt: skip
    # runs that must end and say something true
    for case_id, expect, overrides in RUN_CASES:
        c = _scenario_case(f"run/{case_id}", "5 never ends" if "trace" in case_id or "buffer" in case_id
                           else "8 divergence" if "lr" in case_id else "2 non-finite", overrides, "", expect)  # fmt: skip
        if "@empty_trace" in c.files["s.yaml"]:
            c.files["s.yaml"] = (
                c.files["s.yaml"]
                .replace("'@empty_trace'", "{dir}/online.csv")
                .replace('"@empty_trace"', "{dir}/online.csv")
                .replace("@empty_trace", "{dir}/online.csv")
            )
            c.files["online.csv"] = "device_id,online_from_s,online_until_s\n"
        cases.append(c)
    return cases


def write_case(case: Case, folder: Path) -> list[str]:
    """Write the case's files under ``folder``; returns its argv with ``{dir}`` filled in."""
    for rel, content in case.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{dir}", str(folder)), encoding="utf-8")
    return [a.replace("{dir}", str(folder)) for a in case.argv]
