"""A job's run directory, `runs_dir/jobs/<id>/`: where it trains (metrics.jsonl, last/, best/,
final/) and what it logs (train.log), read without torch."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

LOG_FILE = "train.log"
LOG_TAIL_BYTES = 64 * 1024


def check_runs_dir_writable(runs_dir: str | Path) -> Path:
    """The runs dir, created if needed; ValueError when files cannot be written there (read-only, full,
    or not this user's), found by writing one rather than by asking for permissions."""
    runs = Path(runs_dir)
    try:
        runs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs):
            pass
    except OSError as e:
        raise ValueError(f"cannot write in the runs directory {runs}: {e.strerror or e}; job records, the queue, "
                         "logs and checkpoints live there (give another --runs-dir)") from None
    return runs


def job_run_dir(runs_dir: str | Path, job_id: str) -> Path:
    """Where a job trains: runs_dir/jobs/<id>/ (metrics.jsonl, train.log, last/, best/, final/)."""
    return Path(runs_dir).resolve() / "jobs" / job_id


def log_line(run_dir: Path, text: str) -> None:
    """Append one time-stamped line to the job's train.log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as f:
        f.write(time.strftime("[%H:%M:%S] ") + text + "\n")


def read_log_tail(path: str | Path, lines: int = 40) -> list[str]:
    """The last `lines` lines of a log (from its last 64 KiB); [] when it does not exist."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            return f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []


def last_checkpoint_iteration(run_dir: str | Path | None) -> int | None:
    """Iteration of run_dir/last (JSON only, no torch), or None."""
    if not run_dir:
        return None
    try:
        return int(json.loads((Path(run_dir) / "last" / "model_card.json").read_text())["iteration"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
