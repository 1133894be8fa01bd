"""`FileJobStore`: job records as `runs/jobs/<id>/job.json`, the default store.

Each record is rewritten atomically (temp file + `os.replace`, so a reader never sees half a
record) under an exclusive `fcntl.flock` on `runs/jobs/<id>/.lock` for every read-modify-write, so
a progress update never overwrites a concurrent cancel request. Several workers on one machine (or
on machines sharing the runs dir through a file system with working `flock`, e.g. NFSv4) see the
same records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contextrast.jobs.record import Record, Updater, to_json
from contextrast.jobs.store import JobStore, NoSuchJob

JOB_FILE = "job.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write `path` so that readers see the old or the new content, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class FileJobStore(JobStore):
    """`runs_dir/jobs/<id>/job.json`; see the module docstring."""

    def __init__(self, runs_dir: str | Path) -> None:
        self.root = Path(runs_dir) / "jobs"
        with contextlib.suppress(OSError):  # a read-only runs dir can still be read; writes then say why
            self.root.mkdir(parents=True, exist_ok=True)

    def _file(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not job_id or "/" in job_id or job_id.startswith(".") or "\0" in job_id:
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / job_id / JOB_FILE

    def _missing(self, job_id: str) -> NoSuchJob:
        known = ", ".join(self.ids()) or "none"
        return NoSuchJob(f"no job {job_id!r} in {self.root}; known jobs: {known}")

    @contextlib.contextmanager
    def _locked(self, job_id: str) -> Iterator[None]:
        folder = self._file(job_id).parent
        if not folder.is_dir():
            raise self._missing(job_id)
        fd = os.open(folder / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def create(self, record: Record) -> None:
        f = self._file(record["id"])
        f.parent.mkdir(parents=True, exist_ok=False)
        atomic_write_text(f, to_json(record, indent=1))

    def get(self, job_id: str) -> Record:
        f = self._file(job_id)
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise self._missing(job_id) from None

    def ids(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob(f"*/{JOB_FILE}"))

    def update(self, job_id: str, fn: Updater) -> Record:
        with self._locked(job_id):
            record = self.get(job_id)
            new = fn(dict(record))
            if new is None:
                return record
            new["updated"] = time.time()
            atomic_write_text(self._file(job_id), to_json(new, indent=1))
            return json.loads(to_json(new))

    def drop_metrics_after(self, job_id: str, iteration: int) -> None:
        path = Path(self.get(job_id)["run_dir"]) / "metrics.jsonl"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        kept = [line for line in lines if _iteration(line) is not None and _iteration(line) <= iteration]
        if len(kept) != len(lines):
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        from contextrast.analysis.training_curves import read_metrics

        return read_metrics(Path(self.get(job_id)["run_dir"]) / "metrics.jsonl")

    def request_version(self, job_id: str) -> Any:
        try:
            return self._file(job_id).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _worker_file(self, identity: str) -> Path:
        return self.root.parent / "workers" / (identity.replace(":", "-") + ".json")

    def beat_worker(self, identity: str) -> None:
        f = self._worker_file(identity)
        f.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(f, json.dumps({"worker": identity, "beat": time.time()}))

    def forget_worker(self, identity: str) -> None:
        self._worker_file(identity).unlink(missing_ok=True)

    def worker_beats(self) -> dict[str, float]:
        beats = {}
        for f in (self.root.parent / "workers").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                d = json.loads(f.read_text())
                beats[d["worker"]] = float(d["beat"])
        return beats


def _iteration(line: str) -> int | None:
    """The `iter` of one metrics.jsonl line, or None for a torn or foreign line."""
    try:
        record = json.loads(line)
        return int(record["iter"])
    except (ValueError, KeyError, TypeError):
        return None
