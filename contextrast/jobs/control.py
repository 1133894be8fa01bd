"""Job control for the app and the CLI: submit, cancel, stop-and-save, resume, list, read.

Every function takes the runs directory (and reads `CONTEXTRAST_REDIS_URL` like the worker does),
so the app, `contextrast jobs …` and the workers agree on one queue and one set of records. Reading
needs no write access to the runs dir; a write that the file system refuses is a ValueError saying
so, not a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from contextrast.jobs.queue import JobQueue, open_queue
from contextrast.jobs.record import RESUMABLE_STATES, Record, new_job_id, new_record
from contextrast.jobs.recovery import mark_interrupted_jobs
from contextrast.jobs.run_dir import LOG_FILE, job_run_dir, last_checkpoint_iteration, read_log_tail
from contextrast.jobs.store import JobStore, open_store, redis_url_from_env
from contextrast.jobs.validate import JobParams, validate_job
from contextrast.paths import PathPolicy

PAST_TENSE = {"cancel": "cancelled", "stop": "stopped"}
F = TypeVar("F", bound=Callable[..., Any])


def _url(redis_url: str | None) -> str:
    return redis_url_from_env() if redis_url is None else redis_url


@functools.lru_cache(maxsize=8)
def _queue(runs_dir: str, redis_url: str) -> JobQueue:
    return open_queue(runs_dir, redis_url)


@functools.lru_cache(maxsize=8)
def _store(runs_dir: str, redis_url: str) -> JobStore:
    return open_store(runs_dir, redis_url)


def queue_for(runs_dir: str | Path, redis_url: str | None = None) -> JobQueue:
    return _queue(str(Path(runs_dir).resolve()), _url(redis_url))


def store_for(runs_dir: str | Path, redis_url: str | None = None) -> JobStore:
    """The record store alone (no queue): what reading needs."""
    return _store(str(Path(runs_dir).resolve()), _url(redis_url))


def writes_runs_dir(fn: F) -> F:
    """A file-system refusal (read-only or full runs dir) becomes a ValueError naming the cause."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except OSError as e:
            runs = kwargs.get("runs_dir", args[1] if len(args) > 1 else "runs")
            raise ValueError(f"cannot write job records in the runs directory {runs}: {e.strerror or e}; "
                             "give a runs directory this user can write (--runs-dir)") from None

    return wrapper  # type: ignore[return-value]


@writes_runs_dir
def submit_job(params: JobParams | dict[str, Any], runs_dir: str | Path = "runs", redis_url: str | None = None,
               paths: PathPolicy | None = None) -> Record:
    """Validate (ValueError/FileNotFoundError with a message when bad), record and enqueue a job.
    `paths`: the folders a web client may name (see validate_job)."""
    q = queue_for(runs_dir, redis_url)
    # with Redis the job may run on another machine, whose GPUs we cannot see from here
    p, cfg = validate_job(params, devices_here=not q.redis_url, paths=paths)
    job_id = new_job_id()
    record = new_record(job_id, p.to_dict(), cfg.to_dict(), run_dir=str(job_run_dir(q.runs_dir, job_id)))
    q.store.create(record)
    q.enqueue(job_id, record["token"])
    return record


def _with_dead_workers_marked(store: JobStore, records: list[Record]) -> list[Record]:
    """Readers see a job whose worker died as `interrupted`, not as running with an ETA."""
    with contextlib.suppress(OSError):  # a read-only runs dir: show what is there
        if mark_interrupted_jobs(store, records):
            return store.list()
    return records


def get_job(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> Record:
    """The job's record (a job whose worker died shows as `interrupted`)."""
    return _get_marked(store_for(runs_dir, redis_url), job_id)


def _get_marked(store: JobStore, job_id: str) -> Record:
    record = store.get(job_id)
    if record["state"] == "running":
        with contextlib.suppress(OSError):
            if mark_interrupted_jobs(store, [record]):
                return store.get(job_id)
    return record


def list_jobs(runs_dir: str | Path = "runs", redis_url: str | None = None) -> list[Record]:
    """All job records, newest first."""
    store = store_for(runs_dir, redis_url)
    return _with_dead_workers_marked(store, store.list())


@writes_runs_dir
def _request(job_id: str, runs_dir: str | Path, redis_url: str | None, kind: str) -> Record:
    def apply(r: Record) -> Record:
        if r["state"] == "queued":
            what = "cancelled" if kind == "cancel" else "stopped before it started (nothing to save)"
            r.update(state="cancelled", ended=time.time(), message=what)
            return r
        if r["state"] != "running":
            raise ValueError(f"job {job_id} is {r['state']}; only queued or running jobs can be {PAST_TENSE[kind]}")
        message = "cancel requested" if kind == "cancel" else "stop requested: finishing the iteration, then saving"
        r.update(request=kind, request_time=time.time(), message=message)
        return r

    return store_for(runs_dir, redis_url).update(job_id, apply)


def cancel_job(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> Record:
    """Stop now, without a checkpoint (a job that ignores it is killed after supervisor.CANCEL_GRACE_S)."""
    return _request(job_id, runs_dir, redis_url, "cancel")


def stop_job(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> Record:
    """Stop-and-save: finish the current iteration, validate, write last/ and final/."""
    return _request(job_id, runs_dir, redis_url, "stop")


@writes_runs_dir
def resume_job(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> Record:
    """Queue an interrupted/stopped/cancelled/failed job again; training continues from run_dir/last."""
    q = queue_for(runs_dir, redis_url)
    _get_marked(q.store, job_id)  # a job whose worker died is resumable at once

    def apply(r: Record) -> Record:
        if r["state"] not in RESUMABLE_STATES:
            raise ValueError(f"job {job_id} is {r['state']}; only {', '.join(RESUMABLE_STATES)} jobs can be resumed")
        last = last_checkpoint_iteration(r["run_dir"])
        r.update(state="queued", token=uuid.uuid4().hex, request=None, request_time=None, error=None, ended=None,
                 message=f"resuming from iteration {last}" if last else "restarting from the beginning")
        return r

    record = q.store.update(job_id, apply)
    q.enqueue(job_id, record["token"])
    return record


def job_metrics(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> list[dict[str, Any]]:
    """The run's metric records (trainer log and validation records) for the curves."""
    return store_for(runs_dir, redis_url).metrics(job_id)


def job_log_tail(job_id: str, runs_dir: str | Path = "runs", lines: int = 40, redis_url: str | None = None) -> str:
    """The end of the job's train.log; the record's own progress lines when the log is on another machine."""
    record = store_for(runs_dir, redis_url).get(job_id)
    path = Path(record.get("run_dir") or job_run_dir(runs_dir, job_id)) / LOG_FILE
    tail = read_log_tail(path, lines) or (record.get("log_tail") or [])[-lines:]
    return "\n".join(tail)


def live_workers(runs_dir: str | Path = "runs", redis_url: str | None = None) -> list[str]:
    """Workers serving this queue that beat recently (`host:pid`)."""
    return store_for(runs_dir, redis_url).live_workers()


def list_job_checkpoints(runs_dir: str | Path = "runs") -> list[Path]:
    """Final checkpoints of finished or stopped jobs (runs_dir/jobs/<id>/final, each with a model card)."""
    return sorted(p.parent for p in (Path(runs_dir) / "jobs").glob("*/final/model_card.json"))
