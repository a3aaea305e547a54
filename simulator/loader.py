"""Read a scenario YAML (plus ``--set key.path=value`` overrides) into a validated Scenario."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fl.config import MLPConfig, SyntheticData
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


class DuplicateKey(yaml.MarkedYAMLError):
    """A mapping that names one key twice (YAML would silently keep the last)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    """SafeLoader's mapping constructor, refusing a key written twice."""
    seen: set = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise DuplicateKey(
                problem=f"the key {key!r} twice in one mapping", problem_mark=key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.construct_mapping = _construct_mapping  # type: ignore[method-assign,assignment]

MAX_DEPTH = 64  # nesting levels of a scenario, sweep or comparison file
MAX_VALUES = 1_000_000  # values in one file once YAML aliases are expanded


class YAMLTooBig(ValueError):
    """A document deeper than :data:`MAX_DEPTH` or larger than :data:`MAX_VALUES` expanded."""


def _expanded_size(value: Any) -> int:
    """Values in ``value`` with every alias expanded, counted without expanding anything
    (aliases share objects, so each object's count is memoised). Raises :class:`YAMLTooBig`."""
    memo: dict[int, int] = {}

    def count(v: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise YAMLTooBig(f"nesting at most {MAX_DEPTH} levels deep")
        if not isinstance(v, dict | list):
            return 1
        if id(v) in memo:
            return memo[id(v)]
        items = list(v.keys()) + list(v.values()) if isinstance(v, dict) else v
        n = 1 + sum(count(x, depth + 1) for x in items)
        if n > MAX_VALUES:
            raise YAMLTooBig(f"at most {MAX_VALUES:,} values once aliases are expanded")
        memo[id(v)] = n
        return n

    return count(value, 0)


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`_Loader`, refusing duplicate keys and documents that are
    too deep or, aliases expanded, too large (:class:`YAMLTooBig`)."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:
        raise YAMLTooBig(f"nesting at most {MAX_DEPTH} levels deep") from None
    _expanded_size(data)
    return data


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping; problems become :class:`ScenarioError`."""
    path = Path(path)
    if not path.is_file():
        found = "a directory" if path.is_dir() else "no such file"
        raise ScenarioError(path, [Problem("", "an existing YAML file", found)])
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKey as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(path, [Problem(where, "each key once", str(exc.problem))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(
            path, [Problem(where, "valid YAML", f"a syntax error ({exc.problem})")]
        ) from None
    except YAMLTooBig as exc:
        raise ScenarioError(path, [Problem("", f"a YAML document with {exc}", "more")]) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        text = str(exc)
        long_int = "integer string conversion" in text
        found = "an integer of more than 4,300 digits" if long_int else text.splitlines()[0][:100]
        raise ScenarioError(path, [Problem("", "valid YAML values", found)]) from None
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
    except YAMLTooBig as exc:
        raise ScenarioError("--set", [Problem(key, f"a value with {exc}", "more")]) from None
    except (yaml.YAMLError, ValueError):
        value = raw  # not YAML: the text itself (validation says if a string does not fit)
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
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, problems_from_validation(exc, Scenario)) from None
    problems = size_problems(scenario)
    if problems:
        raise ScenarioError(source, problems)
    return scenario


MAX_PARAMETERS = 50_000_000  # one model; a cohort stacks one copy per device
MAX_DATA_VALUES = 500_000_000  # generated data, float32 (2 GB)
_INPUT_FEATURES = {"digits": 64, "mnist": 784, "fashion_mnist": 784, "cifar10": 3072,
                   "femnist": 784}  # fmt: skip


def size_problems(scenario: Scenario) -> list[Problem]:
    """What one scenario may ask for, beyond each field's own bounds: the model's parameters
    and the generated data's size (a typo must not end in MemoryError an hour later)."""
    problems = []
    data, model = scenario.data, scenario.model
    if isinstance(data, SyntheticData):
        features: int | None = data.dim
        classes = data.num_classes
    else:
        features = _INPUT_FEATURES.get(data.kind)
        classes = 62 if data.kind == "femnist" else 10
    if isinstance(model, MLPConfig) and features is not None:
        widths = [features, *model.hidden, classes]
        params = sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
        if params > MAX_PARAMETERS:
            expected = f"a model of at most {MAX_PARAMETERS:,} parameters"
            problems.append(Problem("model.hidden", expected, f"{params:,} parameters"))
    if isinstance(data, SyntheticData) and not scenario.systems_only:
        values = scenario.devices.count * data.samples_median * data.dim
        if values > MAX_DATA_VALUES:
            expected = f"at most {MAX_DATA_VALUES:,} generated values (devices x samples x dim)"
            problems.append(Problem("data.samples_median", expected, f"{values:,}"))
    return problems


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
