"""Data files cannot run code: no unpickling, torch.load or YAML loading that could, anywhere in
the packages (an AST walk, so a new call site cannot slip in unnoticed)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("simulator", "channels", "devices", "fl")


def calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name):
                yield owner.id, node.func.attr, node


def unsafe_calls(path: Path) -> list[str]:
    found = []
    for owner, attr, node in calls(path):
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}"
        if owner == "torch" and attr == "load":
            weights_only = [k for k in node.keywords if k.arg == "weights_only"]
            if not weights_only or getattr(weights_only[0].value, "value", None) is not True:
                found.append(f"{where}: torch.load without weights_only=True")
        if owner == "pickle" and attr in ("load", "loads") and path.name != "safe_pickle.py":
            found.append(f"{where}: pickle.{attr} (use fl.safe_pickle.load_data_pickle)")
        if owner == "yaml" and attr in ("unsafe_load", "full_load", "load_all"):
            found.append(f"{where}: yaml.{attr}")
        if owner == "yaml" and attr == "load":
            loader = [k for k in node.keywords if k.arg == "Loader"]
            if not loader or getattr(loader[0].value, "id", None) != "_Loader":
                found.append(f"{where}: yaml.load without the safe _Loader")
    return found


def test_no_loader_that_can_run_code():
    files = [f for p in PACKAGES for f in sorted((ROOT / p).rglob("*.py"))]
    assert [u for f in files for u in unsafe_calls(f)] == []


def test_the_yaml_loader_is_a_safe_loader():
    from simulator.loader import _Loader

    assert issubclass(_Loader, yaml.SafeLoader)


def test_the_walker_sees_unsafe_calls(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text(
        "import pickle, torch, yaml\n"
        "pickle.loads(b'')\n"
        "torch.load('m.pt')\n"
        "torch.load('m.pt', weights_only=False)\n"
        "torch.load('m.pt', weights_only=True)\n"
        "yaml.load('a: 1', Loader=yaml.Loader)\n"
        "yaml.unsafe_load('a: 1')\n"
    )
    found = [line.split(": ", 1)[1] for line in unsafe_calls(sample)]
    assert found == [
        "pickle.loads (use fl.safe_pickle.load_data_pickle)",
        "torch.load without weights_only=True",
        "torch.load without weights_only=True",
        "yaml.load without the safe _Loader",
        "yaml.unsafe_load",
    ]
