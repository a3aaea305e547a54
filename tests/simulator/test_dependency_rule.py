"""DESIGN section 1: channels, devices and fl import none of each other; only simulator
imports simpy; channels and devices import no torch. Inside simulator, the engine never
imports the studies or the CLI, and the file-level modules (config, loader, errors, outputs,
rng) import neither. Relative imports are resolved before they are checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("simulator", "channels", "devices", "fl")
FORBIDDEN = {
    "channels": {"devices", "fl", "simulator", "simpy", "torch", "tests"},
    "devices": {"channels", "fl", "simulator", "simpy", "torch", "tests"},
    "fl": {"channels", "devices", "simulator", "simpy", "tests"},
    "simulator": {"tests", "benchmarks"},
}
# layers inside simulator: module prefix -> modules it must not import
SIMULATOR_LAYERS = {
    "simulator.engine": {"simulator.studies", "simulator.cli"},
    "simulator.config": {"simulator.engine", "simulator.studies", "simulator.cli", "simpy"},
    "simulator.loader": {"simulator.engine", "simulator.studies", "simulator.cli", "simpy"},
    "simulator.errors": {"simulator.engine", "simulator.studies", "simulator.cli", "simpy"},
    "simulator.outputs": {"simulator.engine", "simulator.studies", "simulator.cli", "simpy"},
    "simulator.rng": {"simulator.engine", "simulator.studies", "simulator.cli", "simpy"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(root).with_suffix("").parts
    package = list(rel[:-1])  # the package a module (or __init__) lives in
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module:
                found.add(module)
            # ``from simulator import studies`` may import a submodule: count it too
            found |= {f"{module}.{alias.name}" if module else alias.name for alias in node.names}
    return found


def imported_roots(path: Path, root: Path = ROOT) -> set[str]:
    return {m.split(".")[0] for m in imported_modules(path, root)}


@pytest.mark.parametrize("package", PACKAGES)
def test_package_respects_the_dependency_rule(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    bad = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert {f: b for f, b in bad.items() if b} == {}


def test_simulator_layers():
    bad = {}
    for f in sorted((ROOT / "simulator").rglob("*.py")):
        name = module_name(f)
        for prefix, forbidden in SIMULATOR_LAYERS.items():
            if name == prefix or name.startswith(prefix + "."):
                hits = {
                    m
                    for m in imported_modules(f)
                    for x in forbidden
                    if m == x or m.startswith(x + ".")
                }
                if hits:
                    bad[name] = sorted(hits)
    assert bad == {}


def test_the_walker_sees_forbidden_imports(tmp_path):
    (tmp_path / "pkg").mkdir()
    sample = tmp_path / "pkg" / "x.py"
    sample.write_text(
        "import simpy\nfrom fl.state import ModelState\nimport numpy as np\n"
        "from ..simulator import engine\nfrom . import sibling\nfrom .sub.mod import thing\n"
    )
    assert imported_modules(sample, tmp_path) == {
        "simpy", "fl.state", "fl.state.ModelState", "numpy", "simulator", "simulator.engine",
        "pkg.sibling", "pkg.sub.mod", "pkg.sub.mod.thing",
    }  # fmt: skip
    assert imported_roots(sample, tmp_path) == {"simpy", "fl", "numpy", "simulator", "pkg"}
