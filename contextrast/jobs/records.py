"""Job records: what the app, the CLI and every worker know about a fine-tuning job.

A record is one JSON object (see `new_record` for its keys). Two stores hold them:

- `FileJobStore` (the default): `runs/jobs/<id>/job.json`, rewritten atomically (temp file +
  `os.replace`, so a reader never sees half a record) under an exclusive `fcntl.flock` on
  `runs/jobs/<id>/.lock` for every read-modify-write, so a progress update never overwrites a
  concurrent cancel request. Several workers on one machine (or on machines sharing the runs dir
  through a file system with working `flock`, e.g. NFSv4) see the same records.
- `RedisJobStore` (when `CONTEXTRAST_REDIS_URL` is set): one JSON string per job in Redis, updated
  with WATCH/MULTI transactions, plus a list of metric records per job for the curves, so workers
  on several machines and the app share records without a shared file system (the checkpoints
  themselves stay in the runs dir of the worker's machine; share that dir to see them in the app).

The atomic claim — "two workers never take the same job" — is `claim`: one transaction that moves
a record from `queued` to `running` only when the queue message's token matches the record's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "finished", "stopped", "cancelled", "interrupted", "failed")
ACTIVE_STATES = ("queued", "running")
RESUMABLE_STATES = ("stopped", "cancelled", "interrupted", "failed")
REQUESTS = ("cancel", "stop")
REDIS_URL_ENV = "CONTEXTRAST_REDIS_URL"
HEARTBEAT_S = 2.0  # how often a worker refreshes its own beat and its running jobs' heartbeat
WORKER_STALE_S = 60.0  # a worker on another machine silent this long counts as dead

Record = dict[str, Any]
Updater = Callable[[Record], Record | None]  # returns the new record, or None to leave it unchanged


def new_job_id() -> str:
    """Sortable by creation time, unique across machines: `20240501-134501-1a2b3c`."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def worker_identity() -> str:
    """`host:pid`, the name a worker writes into the records it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_record(job_id: str, params: dict[str, Any], config: dict[str, Any], run_dir: str) -> Record:
    now = time.time()
    return {
        "id": job_id,
        "state": "queued",
        "params": params,  # what the user asked for (JobParams as a dict)
        "config": config,  # the resolved ExperimentConfig (to_dict) the job trains with
        "run_dir": run_dir,
        "token": uuid.uuid4().hex,  # the queue message that may claim this record
        "attempts": 0,  # how many times a worker claimed it (1 per start or resume)
        "request": None,  # None | "cancel" | "stop", written by the app/CLI, read by the training hook
        "request_time": None,
        "worker": None,  # host:pid of the worker running it
        "host": None,
        "worker_pid": None,
        "child_pid": None,
        "heartbeat": None,
        "iteration": 0,
        "total": int(config.get("train", {}).get("iterations", 0)),
        "progress": 0.0,
        "eta_s": None,
        "images_per_s": None,
        "last_log": None,
        "log_tail": [],  # the latest progress lines (the full log is run_dir/train.log)
        "last_val": None,
        "best_miou": None,
        "checkpoint": None,  # run_dir/final once finished or stopped
        "error": None,
        "message": "waiting for a worker",
        "created": now,
        "started": None,
        "ended": None,
        "updated": now,
    }


def pid_alive(pid: int | None) -> bool:
    """True when process `pid` exists on this machine and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a SIGKILLed process stays a zombie until its parent reaps it
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class JobStore:
    """Interface of a record store; see the module docstring."""

    def create(self, record: Record) -> None:
        raise NotImplementedError

    def get(self, job_id: str) -> Record:
        """The record, or FileNotFoundError naming the known ids."""
        raise NotImplementedError

    def ids(self) -> list[str]:
        raise NotImplementedError

    def update(self, job_id: str, fn: Updater) -> Record:
        """Atomic read-modify-write; returns the record as stored afterwards."""
        raise NotImplementedError

    def append_metrics(self, job_id: str, record: dict[str, Any]) -> None:
        """Keep a metric record for the curves (the file store reads run_dir/metrics.jsonl instead)."""

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

    def _worker_beats(self) -> dict[str, float]:
        raise NotImplementedError

    def live_workers(self) -> list[str]:
        """Workers that beat recently; on this host, only those whose process still exists."""
        here, now, out = socket.gethostname(), time.time(), []
        for identity, beat in self._worker_beats().items():
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


def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FileJobStore(JobStore):
    """`runs_dir/jobs/<id>/job.json`; see the module docstring."""

    def __init__(self, runs_dir: str | Path) -> None:
        self.root = Path(runs_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)

    def _file(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / job_id / "job.json"

    @contextlib.contextmanager
    def _locked(self, job_id: str) -> Iterator[None]:
        lock = self._file(job_id).parent / ".lock"
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def create(self, record: Record) -> None:
        f = self._file(record["id"])
        f.parent.mkdir(parents=True, exist_ok=False)
        _atomic_write_json(f, record)

    def get(self, job_id: str) -> Record:
        f = self._file(job_id)
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except FileNotFoundError:
            known = ", ".join(self.ids()) or "none"
            raise FileNotFoundError(f"no job {job_id!r} in {self.root}; known jobs: {known}") from None

    def ids(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/job.json"))

    def update(self, job_id: str, fn: Updater) -> Record:
        with self._locked(job_id):
            record = self.get(job_id)
            new = fn(dict(record))
            if new is None:
                return record
            new["updated"] = time.time()
            _atomic_write_json(self._file(job_id), new)
            return new

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
        _atomic_write_json(f, {"worker": identity, "beat": time.time()})

    def forget_worker(self, identity: str) -> None:
        self._worker_file(identity).unlink(missing_ok=True)

    def _worker_beats(self) -> dict[str, float]:
        beats = {}
        for f in (self.root.parent / "workers").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                d = json.loads(f.read_text())
                beats[d["worker"]] = float(d["beat"])
        return beats


class RedisJobStore(JobStore):
    """Records as JSON strings in Redis under `<prefix>:job:<id>`; see the module docstring."""

    def __init__(self, url: str, prefix: str = "contextrast") -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self.url = url

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def create(self, record: Record) -> None:
        if not self.redis.set(self._key(record["id"]), json.dumps(record), nx=True):
            raise ValueError(f"job {record['id']} exists already")
        self.redis.zadd(f"{self.prefix}:jobs", {record["id"]: record["created"]})

    def get(self, job_id: str) -> Record:
        raw = self.redis.get(self._key(job_id))
        if raw is None:
            raise FileNotFoundError(f"no job {job_id!r} in Redis {self.url}; known jobs: {', '.join(self.ids()) or 'none'}")
        return json.loads(raw)

    def ids(self) -> list[str]:
        return [i.decode() for i in self.redis.zrange(f"{self.prefix}:jobs", 0, -1)]

    def update(self, job_id: str, fn: Updater) -> Record:
        import redis

        key = self._key(job_id)
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        pipe.reset()
                        return self.get(job_id)  # raises FileNotFoundError
                    record = json.loads(raw)
                    new = fn(dict(record))
                    if new is None:
                        pipe.reset()
                        return record
                    new["updated"] = time.time()
                    pipe.multi()
                    pipe.set(key, json.dumps(new))
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue  # someone else wrote in between: read again

    def append_metrics(self, job_id: str, record: dict[str, Any]) -> None:
        self.redis.rpush(self._key(job_id) + ":metrics", json.dumps(record))

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.redis.lrange(self._key(job_id) + ":metrics", 0, -1)]

    def request_version(self, job_id: str) -> Any:
        return self.redis.get(self._key(job_id))

    def beat_worker(self, identity: str) -> None:
        self.redis.set(f"{self.prefix}:worker:{identity}", time.time(), ex=int(WORKER_STALE_S))

    def forget_worker(self, identity: str) -> None:
        self.redis.delete(f"{self.prefix}:worker:{identity}")

    def _worker_beats(self) -> dict[str, float]:
        beats = {}
        for key in self.redis.scan_iter(f"{self.prefix}:worker:*"):
            value = self.redis.get(key)
            if value is not None:
                beats[key.decode().split(":worker:", 1)[1]] = float(value)
        return beats


def open_store(runs_dir: str | Path, redis_url: str | None = None) -> JobStore:
    """The store for `runs_dir`: Redis when a URL is given or `CONTEXTRAST_REDIS_URL` is set."""
    url = redis_url if redis_url is not None else os.environ.get(REDIS_URL_ENV, "")
    return RedisJobStore(url) if url else FileJobStore(runs_dir)
