"""Atomic result files: write to a temporary name in the same folder, then rename.

A killed run therefore never leaves a half-written file under its final name, and a run folder
only appears (by one rename) once everything in it is complete. Files get the permissions the
user's umask gives a new file (``tempfile.mkstemp`` alone would leave them 0600, unreadable to
the group a shared results folder is for).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import yaml


def _file_mode() -> int:
    """0666 less the process umask: what ``open(path, "w")`` would create."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def write_yaml(path: Path, obj) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def write_table(path: Path, table: pa.Table, *, csv: bool = False) -> None:
    """Parquet at ``path`` (and CSV beside it with ``csv=True``)."""
    _atomic(path, lambda tmp: pq.write_table(table, tmp))
    if csv:
        _atomic(path.with_suffix(".csv"), lambda tmp: pa_csv.write_csv(table, tmp))


def publish_dir(staging: Path, final: Path) -> None:
    """Move a finished staging folder to its final name, replacing an older result."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
