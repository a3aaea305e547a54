"""Read a scenario YAML (plus ``--set key.path=value`` overrides) into a validated Scenario."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.config import Scenario
from simulator.errors import Problem, ScenarioError, problems_from_validation


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1.0e6`` / ``5e5`` as floats (YAML 1.2), not strings.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent (``1.0e+6``);
    physical quantities are written the short way, and sweep values must stay numbers.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`_Loader`."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping; problems become :class:`ScenarioError`."""
    path = Path(path)
    if not path.is_file():
        found = "a directory" if path.is_dir() else "no such file"
        raise ScenarioError(path, [Problem("", "an existing YAML file", found)])
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(
            path, [Problem(where, "valid YAML", f"a syntax error ({exc.problem})")]
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ScenarioError(path, [Problem("", "valid YAML", str(exc).splitlines()[0])]) from None
    if not isinstance(data, dict):
        raise ScenarioError(
            path, [Problem("", "a mapping of sections (name, devices, ...)", _kind(data))]
        )
    return data


def _kind(value: Any) -> str:
    return "an empty file" if value is None else f"a {type(value).__name__}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"channel.uplink_bandwidth_hz=2e6"`` -> (["channel", "uplink_bandwidth_hz"], 2e6).

    The value is read as YAML, so numbers, booleans, lists and mappings work.
    """
    if "=" not in text:
        raise ScenarioError("--set", [Problem(text, "key.path=value", repr(text))])
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ScenarioError("--set", [Problem(key, "a dotted key path such as a.b.c", repr(key))])
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str] | Mapping[str, Any]):
    """Deep-copied ``data`` with each override set at its key path (creating mappings)."""
    out = copy.deepcopy(dict(data))
    items = (
        [(k.split("."), v) for k, v in overrides.items()]
        if isinstance(overrides, Mapping)
        else [parse_override(o) for o in overrides]
    )
    for parts, value in items:
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ScenarioError(
                    "--set", [Problem(where, "a mapping to set keys inside", repr(child))]
                )
            node = child
        node[parts[-1]] = value
    return out


def validate_scenario(data: Mapping[str, Any], source: str | Path) -> Scenario:
    """Validate a mapping against the schema; every problem is reported, not just the first."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, problems_from_validation(exc, Scenario)) from None


def load_spec_with_base(path: str | Path, model):
    """Validate a file that names a ``base`` scenario (sweeps, comparisons) against ``model``;
    returns (spec, base scenario mapping). Raises :class:`ScenarioError`."""
    from simulator.errors import problems_from_validation

    path = Path(path)
    try:
        spec = model.model_validate(read_yaml_mapping(path))
    except ValidationError as exc:
        raise ScenarioError(path, problems_from_validation(exc, model)) from None
    return spec, read_yaml_mapping((path.parent / spec.base).resolve())


def load_scenario(path: str | Path, overrides: Iterable[str] | Mapping[str, Any] = ()) -> Scenario:
    """Load, override and validate a scenario file. Raises :class:`ScenarioError`."""
    data = apply_overrides(read_yaml_mapping(path), overrides)
    source = f"{path} (with --set overrides)" if overrides else str(path)
    return validate_scenario(data, source)
