"""Where job records live: the `JobStore` interface, and `open_store` choosing one.

- `FileJobStore` (the default, contextrast.jobs.file_store): one JSON file per job in the runs dir.
- `RedisJobStore` (when `CONTEXTRAST_REDIS_URL` is set, contextrast.jobs.redis_store): records in
  Redis, so workers on several machines and the app share them without a shared file system.

The atomic claim — "two workers never take the same job" — is `claim`: one transaction that moves
a record from `queued` to `running` only when the queue message's token matches the record's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

from contextrast.jobs.processes import pid_alive
from contextrast.jobs.record import Record, Updater

REDIS_URL_ENV = "CONTEXTRAST_REDIS_URL"
HEARTBEAT_S = 2.0  # how often a worker refreshes its own beat and its running jobs' heartbeat
WORKER_STALE_S = 60.0  # a worker on another machine silent this long counts as dead


class NoSuchJob(FileNotFoundError):
    """The store has no record with this id (a FileNotFoundError, so callers that report those report it)."""


class JobStore:
    """Interface of a record store; see the module docstring."""

    def create(self, record: Record) -> None:
        raise NotImplementedError

    def get(self, job_id: str) -> Record:
        """The record, or NoSuchJob naming the known ids."""
        raise NotImplementedError

    def ids(self) -> list[str]:
        raise NotImplementedError

    def update(self, job_id: str, fn: Updater) -> Record:
        """Atomic read-modify-write; returns the record as stored afterwards (NoSuchJob when absent)."""
        raise NotImplementedError

    def append_metrics(self, job_id: str, record: dict[str, Any]) -> None:
        """Keep a metric record for the curves (the file store reads run_dir/metrics.jsonl instead)."""

    def drop_metrics_after(self, job_id: str, iteration: int) -> None:
        """Forget metric records past `iteration` (a resumed job writes them again)."""

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def request_version(self, job_id: str) -> Any:
        """A cheap value that changes whenever the record changes (mtime, or the Redis string)."""
        raise NotImplementedError

    def beat_worker(self, identity: str) -> None:
        """Say that worker `identity` (host:pid) is alive; `live_workers` trusts beats for WORKER_STALE_S."""
        raise NotImplementedError

    def forget_worker(self, identity: str) -> None:
        raise NotImplementedError

    def worker_beats(self) -> dict[str, float]:
        """worker identity → time of its last beat."""
        raise NotImplementedError

    def live_workers(self) -> list[str]:
        """Workers that beat recently; on this host, only those whose process still exists."""
        here, now, out = socket.gethostname(), time.time(), []
        for identity, beat in self.worker_beats().items():
            host, pid = identity.rsplit(":", 1)
            alive = pid_alive(int(pid)) if host == here else now - beat < WORKER_STALE_S
            if alive:
                out.append(identity)
        return sorted(out)

    # --- derived helpers ---------------------------------------------------------------------

    def list(self) -> list[Record]:
        out = []
        for job_id in self.ids():
            with contextlib.suppress(FileNotFoundError, ValueError):
                out.append(self.get(job_id))
        return sorted(out, key=lambda r: r["created"], reverse=True)

    def set(self, job_id: str, **changes: Any) -> Record:
        def apply(r: Record) -> Record:
            r.update(changes)
            return r

        return self.update(job_id, apply)

    def claim(self, job_id: str, token: str, worker: str) -> Record | None:
        """Move the record from queued to running for `worker` when `token` is current; else None."""
        claimed: dict[str, bool] = {"ok": False}

        def apply(r: Record) -> Record | None:
            claimed["ok"] = False
            if r["state"] != "queued" or r["token"] != token:
                return None
            host, pid = worker.rsplit(":", 1)
            r.update(state="running", worker=worker, host=host, worker_pid=int(pid), attempts=r["attempts"] + 1,
                     started=time.time(), heartbeat=time.time(), ended=None, error=None, message="starting")
            claimed["ok"] = True
            return r

        record = self.update(job_id, apply)
        return record if claimed["ok"] else None


def redis_url_from_env() -> str:
    return os.environ.get(REDIS_URL_ENV, "").strip()


def open_store(runs_dir: str | Path, redis_url: str | None = None) -> JobStore:
    """The store for `runs_dir`: Redis when a URL is given or `CONTEXTRAST_REDIS_URL` is set."""
    url = redis_url_from_env() if redis_url is None else redis_url
    if url:
        from contextrast.jobs.redis_store import RedisJobStore

        return RedisJobStore(url)
    from contextrast.jobs.file_store import FileJobStore

    return FileJobStore(runs_dir)
