"""Atomic result files: write to a temporary name in the same folder, then rename.

A killed run therefore never leaves a half-written file under its final name, and a run folder
only appears (by one rename) once everything in it is complete. Files get the permissions the
user's umask gives a new file (``tempfile.mkstemp`` alone would leave them 0600, unreadable to
the group a shared results folder is for).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import yaml


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _file_mode() -> int:
    """0666 less the process umask: what ``open(path, "w")`` would create."""
    return 0o666 & ~_umask()


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


class OutputFolderError(ValueError):
    """``--out`` cannot hold results: a file, below a file, or not writable."""

    def __init__(self, path: Path, found: str):
        self.path, self.found = path, found
        super().__init__(f"{path}: --out: expected a folder wedge can write, found {found}")


def check_out_root(root: str | Path) -> Path:
    """Make sure results can be written under ``root`` before anything runs, without creating
    it (a run that fails validation must leave nothing behind): the nearest existing folder on
    the way must take a probe file; then tidy what killed runs left in ``root``. Raises
    :class:`OutputFolderError`."""
    root = Path(root)
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        found = "a file" if existing == root else f"a file at {existing} above it"
        raise OutputFolderError(root, found)
    try:
        fd, probe = tempfile.mkstemp(prefix=".wedge-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputFolderError(root, exc.strerror or type(exc).__name__) from None
    recover(root)
    return root


def staging_dir(root: Path, name: str) -> Path:
    """A fresh staging folder for result ``name``, unique to this process and call (two runs
    of one scenario into one root never share it); hidden until published."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-{os.getpid()}-", dir=root))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide a shared folder's results
    return staging


def _pid_of(hidden: str, marker: str) -> int | None:
    """The pid in ``.<name>.<marker>-<pid>-<random>`` (None if not such a name)."""
    try:
        return int(hidden.rsplit(f".{marker}-", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def recover(root: Path) -> None:
    """Undo what a killed run left under ``root``: staging folders of dead processes are
    removed (they never looked complete); a result a re-publish had moved aside
    (``.<name>.old-<pid>-*``) is put back if its process died before the new one took its
    place, and removed otherwise."""
    if not root.is_dir():
        return
    with _publish_lock(root):
        for entry in root.iterdir():
            if not entry.name.startswith("."):
                continue
            for marker in ("staging", "old"):
                pid = _pid_of(entry.name, marker)
                if pid is None or _alive(pid):
                    continue
                final = root / entry.name[1:].rsplit(f".{marker}-", 1)[0]
                if marker == "old" and not final.exists():
                    os.replace(entry, final)
                else:
                    shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def _publish_lock(root: Path):
    """An exclusive lock on the folder ``root`` itself while results are moved (a POSIX
    advisory lock on its descriptor: no lock file is left behind)."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def publish_dir(staging: Path, final: Path) -> None:
    """Move a finished staging folder to its final name, replacing an older result.

    Under a lock on the root, so concurrent runs publish one after the other. Replacing takes
    two renames (old result aside, new one in); if the process dies between them,
    :func:`recover` puts the old result back on the next run."""
    with _publish_lock(final.parent):
        if final.exists():
            aside = f".{final.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            old = final.with_name(aside)
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
