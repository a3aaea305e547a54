"""The notebooks run top to bottom (nbclient), on small settings (their wall time is a
benchmark matter, not asserted here)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["latency_study.ipynb", "accuracy_vs_time.ipynb"])
def test_notebook_executes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("WEDGE_NOTEBOOK_OUT", str(tmp_path))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors == []
    assert any(
        o.get("output_type") in ("display_data", "execute_result")
        for c in nb.cells
        for o in c.get("outputs", [])
    )
