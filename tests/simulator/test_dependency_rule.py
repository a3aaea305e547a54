"""DESIGN section 1: channels, devices and fl import none of each other; only simulator
imports simpy; channels and devices import no torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("simulator", "channels", "devices", "fl")
FORBIDDEN = {
    "channels": {"devices", "fl", "simulator", "simpy", "torch"},
    "devices": {"channels", "fl", "simulator", "simpy", "torch"},
    "fl": {"channels", "devices", "simulator", "simpy"},
    "simulator": set(),
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", PACKAGES)
def test_package_respects_the_dependency_rule(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    bad = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert {f: b for f, b in bad.items() if b} == {}


def test_the_walker_sees_forbidden_imports(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import simpy\nfrom fl.state import ModelState\nimport numpy as np\n")
    assert imported_roots(sample) == {"simpy", "fl", "numpy"}
