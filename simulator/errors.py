"""User mistakes in scenario files, reported as one clear line per problem (never a traceback).

Each problem names the file, the field path, what was expected and what was found::

    scenarios/bad.yaml: channel.uplink_bandwidth_hz: expected a number greater than 0, found -5
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class Problem:
    field_path: str
    expected: str
    found: str

    def format(self, source: str) -> str:
        where = f"{source}: {self.field_path}" if self.field_path else source
        return f"{where}: expected {self.expected}, found {self.found}"


class ScenarioError(Exception):
    """One or more problems in one scenario source (a file, or a file plus overrides)."""

    def __init__(self, source: str | Path, problems: list[Problem]):
        self.source = str(source)
        self.problems = problems
        super().__init__(self.format())

    def format(self) -> str:
        return "\n".join(p.format(self.source) for p in self.problems)


def _unwrap(annotation):
    """Strip Annotated/Optional/list wrappers down to the union members or the single type."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, UnionType):
        members = []
        for arg in get_args(annotation):
            members.extend(_unwrap(arg))
        return members
    return [annotation]


def _is_model(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tag_of(model: type[BaseModel]) -> str | None:
    for name in ("kind", "dist"):
        field = model.model_fields.get(name)
        if field is not None and get_origin(field.annotation) is Literal:
            return str(get_args(field.annotation)[0])
    return None


def resolve_location(root: type[BaseModel], loc: tuple) -> tuple[str, type[BaseModel] | None]:
    """Dotted user-facing path for a pydantic error location, and the model found there.

    Pydantic adds discriminator tags ('rayleigh') and union branch labels ('float',
    'tagged-union[...]') to ``loc``; they are not keys the user wrote, so they are dropped.
    """
    parts: list[str] = []
    current: list = [root]
    for item in loc:
        models = [m for m in current if _is_model(m)]
        if isinstance(item, int):
            parts.append(f"[{item}]")
            current = [
                a
                for tp in current
                if get_origin(tp) in (list, tuple)
                for a in _unwrap(get_args(tp)[0])
            ]
            continue
        tagged = [m for m in models if _tag_of(m) == item]
        if tagged:  # a discriminator value pydantic inserted
            current = tagged
            continue
        holders = [m for m in models if item in m.model_fields]
        if holders:
            parts.append(("." if parts else "") + item)
            current = _unwrap(holders[0].model_fields[item].annotation)
            continue
        # anything else is a union branch label such as 'float' or 'tagged-union[...]'
    models = [m for m in current if _is_model(m)]
    return "".join(parts), models[0] if len(models) == 1 else None


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def _show(value) -> str:
    """A short repr: bounded before it is built (an alias bomb or a 5,000-digit number must
    not be expanded or converted in full just to be cut)."""
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_EXPECTED_PREFIXES = ("Input should be ", "Value error, ", "Assertion failed, ")
# pydantic's wording -> what a scenario author would call it
_PLAIN_WORDS = {
    "a valid dictionary or object to extract fields from": "a mapping",
    "a valid dictionary": "a mapping",
    "a valid number, unable to parse string as a number": "a number",
    "a valid integer, unable to parse string as an integer": "an integer",
    "a valid number": "a number",
    "a valid integer": "an integer",
    "a valid list": "a list",
}


def _plain(msg: str) -> str:
    for prefix in _EXPECTED_PREFIXES:
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    for noun in ("String", "List", "Tuple", "Dictionary"):  # "String should have at most 100
        if msg.startswith(f"{noun} should have "):  # characters" -> "a string of at most ..."
            return f"a {noun.lower()} of " + msg[len(f"{noun} should have ") :]
    if msg.startswith("String should match pattern "):
        return "a string matching " + msg[len("String should match pattern ") :]
    if "exceeded maximum size" in msg:  # pydantic on a number of thousands of digits
        return "a number of at most 4,300 digits"
    if msg.startswith(("greater than", "less than")):
        msg = "a number " + msg
    return _PLAIN_WORDS.get(msg, msg)


def problems_from_validation(exc: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Turn a pydantic ValidationError on model ``root`` into Problems, one per field path.

    Several errors on one path (a value that fits no member of a union) merge into one problem
    whose expectation lists the alternatives.
    """
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            path, owner = resolve_location(root, loc[:-1])
            path = f"{path}.{loc[-1]}" if path else str(loc[-1])
            allowed = sorted(owner.model_fields) if owner is not None else []
            expected = "one of the keys " + ", ".join(allowed) if allowed else "no such key"
            problems.append(Problem(path, expected, f"unknown key {loc[-1]!r}"))
            continue
        path, _ = resolve_location(root, loc)
        if kind == "missing":
            problems.append(Problem(path, "a value (this field is required)", "nothing"))
        elif kind == "union_tag_invalid":
            ctx = err.get("ctx", {})
            tag = str(ctx.get("discriminator", "kind")).strip("'")
            problems.append(
                Problem(
                    f"{path}.{tag}".strip("."),
                    f"one of {ctx.get('expected_tags')}",
                    _show(ctx.get("tag")),
                )
            )
        elif kind == "union_tag_not_found":
            ctx = err.get("ctx", {})
            tag = str(ctx.get("discriminator", "kind")).strip("'")
            problems.append(Problem(f"{path}.{tag}".strip("."), f"a '{tag}' key", "none"))
        else:
            problems.append(Problem(path, _plain(err["msg"]), _show(err.get("input"))))
    return _merge_same_path(problems)


def _merge_same_path(problems: list[Problem]) -> list[Problem]:
    """One problem per path; a path that has a deeper problem under it is dropped, since the
    deeper one is the specific mistake (a union branch matched, then failed inside)."""
    paths = {p.field_path for p in problems}
    problems = [
        p
        for p in problems
        if not any(q.startswith(p.field_path + ".") for q in paths if p.field_path)
    ]
    merged: dict[str, Problem] = {}
    for p in problems:
        if p.field_path in merged:
            prev = merged[p.field_path]
            if p.expected not in prev.expected:
                merged[p.field_path] = Problem(
                    p.field_path, f"{prev.expected} or {p.expected}", prev.found
                )
        else:
            merged[p.field_path] = p
    return list(merged.values())
