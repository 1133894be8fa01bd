"""Directories written atomically: a reader finds the complete old or the complete new directory, never a mix.

Everything goes into a temporary sibling directory, each file and the directory are fsynced, then the old
directory is renamed away, the new one renamed in, and the old one removed. A kill at any moment leaves the
complete old or the complete new directory; in the instant between the two renames the old one sits at
`.<name>.old-*`, where `resolve_dir` finds it and the next write puts it back. Temporary `.<name>.tmp-*`
directories left by a kill are ignored by readers and removed by a later write once an hour old.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

STALE_TMP_S = 3600.0  # a temporary directory this old was left by a killed writer


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. platforms where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


def _siblings(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.{kind}-*"))


def _recover(target: Path) -> None:
    """Finish a swap that a kill interrupted: put the old directory back if the target is missing, drop
    leftover old copies, and temporary directories older than `STALE_TMP_S` (younger ones may belong to a
    writer still at work; concurrent writers to one target are not supported anyway)."""
    if not target.exists():
        olds = _siblings(target, "old")
        if olds:
            os.replace(olds[-1], target)
    for stale in _siblings(target, "old"):
        shutil.rmtree(stale, ignore_errors=True)
    now = time.time()
    for stale in _siblings(target, "tmp"):
        try:
            if now - stale.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def atomic_write_dir(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_dir)` to fill a fresh directory, then swap it in at `target` (see module docstring)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise ValueError(f"checkpoint path {target} exists and is not a directory")
    _recover(target)
    token = uuid.uuid4().hex[:8]
    tmp = target.parent / f".{target.name}.tmp-{token}"
    old = target.parent / f".{target.name}.old-{token}"
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_tree(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def resolve_dir(path: str | Path, expected: str) -> Path:
    """The directory to read: `path`, or the old copy parked by an interrupted swap. `expected` (what the
    directory should hold) goes into the error when there is neither."""
    path = Path(path)
    if path.is_dir():
        return path
    olds = _siblings(path, "old")
    if olds:
        return olds[-1]
    if path.exists():
        raise ValueError(f"checkpoint path {path} is a file; expected a directory holding {expected}")
    raise FileNotFoundError(f"checkpoint directory {path} does not exist; expected a directory holding {expected}")
