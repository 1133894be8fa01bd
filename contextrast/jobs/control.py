"""Job control for the app and the CLI: submit, cancel, stop-and-save, resume, list, read.

Every function takes the runs directory (and reads `CONTEXTRAST_REDIS_URL` like the worker does),
so the app, `contextrast jobs …` and the workers agree on one queue and one set of records.
"""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from contextrast.jobs.queue import JobQueue, open_queue, redis_url_from_env
from contextrast.jobs.records import (
    RESUMABLE_STATES,
    WORKER_STALE_S,
    JobStore,
    new_job_id,
    new_record,
    open_store,
    pid_alive,
)
from contextrast.jobs.tasks import job_run_dir, log_line, read_log_tail
from contextrast.jobs.validate import JobParams, validate_job

Record = dict[str, Any]


@functools.lru_cache(maxsize=8)
def _queue(runs_dir: str, redis_url: str) -> JobQueue:
    return open_queue(runs_dir, redis_url)


def queue_for(runs_dir: str | Path, redis_url: str | None = None) -> JobQueue:
    url = redis_url_from_env() if redis_url is None else redis_url
    return _queue(str(Path(runs_dir).resolve()), url)


def store_for(runs_dir: str | Path, redis_url: str | None = None) -> JobStore:
    return queue_for(runs_dir, redis_url).store


def submit_job(params: JobParams | dict[str, Any], runs_dir: str | Path = "runs", redis_url: str | None = None) -> Record:
    """Validate (ValueError/FileNotFoundError with a message when bad), record and enqueue a job."""
    q = queue_for(runs_dir, redis_url)
    # with Redis the job may run on another machine, whose GPUs we cannot see from here
    p, cfg = validate_job(params, devices_here=not q.redis_url)
    job_id = new_job_id()
    record = new_record(job_id, p.to_dict(), cfg.to_dict(), run_dir=str(job_run_dir(q.runs_dir, job_id)))
    q.store.create(record)
    q.enqueue(job_id, record["token"])
    return record


def get_job(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> Record:
    return store_for(runs_dir, redis_url).get(job_id)


def list_jobs(runs_dir: str | Path = "runs", redis_url: str | None = None) -> list[Record]:
    """All job records, newest first."""
    return store_for(runs_dir, redis_url).list()


def _request(job_id: str, runs_dir: str | Path, redis_url: str | None, kind: str) -> Record:
    def apply(r: Record) -> Record:
        if r["state"] == "queued":
            what = "cancelled" if kind == "cancel" else "stopped before it started (nothing to save)"
            r.update(state="cancelled", ended=time.time(), message=what)
            return r
        if r["state"] != "running":
            raise ValueError(f"job {job_id} is {r['state']}; only queued or running jobs can be {kind}ped"
                             .replace("cancelped", "cancelled"))
        message = "cancel requested" if kind == "cancel" else "stop requested: finishing the iteration, then saving"
        r.update(request=kind, request_time=time.time(), message=message)
        return r

    return store_for(runs_dir, redis_url).update(job_id, apply)


def cancel_job(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> Record:
    """Stop now, without a checkpoint (a job that ignores it is killed after tasks.CANCEL_GRACE_S)."""
    return _request(job_id, runs_dir, redis_url, "cancel")


def stop_job(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> Record:
    """Stop-and-save: finish the current iteration, validate, write last/ and final/."""
    return _request(job_id, runs_dir, redis_url, "stop")


def resume_job(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> Record:
    """Queue an interrupted/stopped/cancelled/failed job again; training continues from run_dir/last."""
    q = queue_for(runs_dir, redis_url)
    import uuid

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


def last_checkpoint_iteration(run_dir: str | Path | None) -> int | None:
    """Iteration of run_dir/last (JSON only, no torch), or None."""
    if not run_dir:
        return None
    try:
        return int(json.loads((Path(run_dir) / "last" / "model_card.json").read_text())["iteration"])
    except (OSError, ValueError, KeyError):
        return None


def mark_interrupted_jobs(store: JobStore) -> list[str]:
    """Running jobs whose worker is gone become `interrupted` (resumable). → their ids.

    Gone: on this machine, neither the worker nor its training child exists; elsewhere, no heartbeat
    for WORKER_STALE_S seconds.
    """
    here, now, marked = socket.gethostname(), time.time(), []
    for r in store.list():
        if r["state"] != "running":
            continue
        stale = now - (r.get("heartbeat") or r.get("started") or now) > WORKER_STALE_S
        dead_here = r.get("host") == here and not pid_alive(r.get("worker_pid")) and not pid_alive(r.get("child_pid"))
        if not (stale or dead_here):
            continue
        worker = r.get("worker")

        def apply(rec: Record, worker: str | None = worker) -> Record | None:
            if rec["state"] != "running" or rec.get("worker") != worker:
                return None
            last = last_checkpoint_iteration(rec.get("run_dir"))
            where = f"its last checkpoint (iteration {last})" if last else "the beginning (no checkpoint yet)"
            rec.update(state="interrupted", ended=now, child_pid=None, request=None,
                       message=f"worker {worker} died; resume to continue from {where}")
            return rec

        if store.update(r["id"], apply)["state"] == "interrupted":
            marked.append(r["id"])
            if r.get("run_dir"):
                log_line(Path(r["run_dir"]), f"job {r['id']} interrupted: worker {worker} is gone")
    return marked


def requeue_lost_jobs(queue: JobQueue) -> list[str]:
    """Queued jobs with no message in the queue get one again. → their ids.

    A worker killed after huey handed it a message but before it claimed the job record leaves the
    record `queued` with nothing left to run it. Sending a second message is safe even when the first
    still exists somewhere: `JobStore.claim` lets only one message with the record's token run the job.
    """
    waiting = {tuple(task.args) for task in queue.huey.pending() if len(task.args) == 2}
    lost = [r for r in queue.store.list() if r["state"] == "queued" and (r["id"], r.get("token")) not in waiting]
    for r in lost:
        queue.enqueue(r["id"], r["token"])
    return [r["id"] for r in lost]


def job_metrics(job_id: str, runs_dir: str | Path = "runs", redis_url: str | None = None) -> list[dict[str, Any]]:
    """The run's metric records (trainer log and validation records) for the curves."""
    return store_for(runs_dir, redis_url).metrics(job_id)


def job_log_tail(job_id: str, runs_dir: str | Path = "runs", lines: int = 40, redis_url: str | None = None) -> str:
    """The end of the job's train.log; the record's own progress lines when the log is on another machine."""
    record = get_job(job_id, runs_dir, redis_url)
    path = Path(record.get("run_dir") or job_run_dir(runs_dir, job_id)) / "train.log"
    tail = read_log_tail(path, lines) or (record.get("log_tail") or [])[-lines:]
    return "\n".join(tail)


def list_job_checkpoints(runs_dir: str | Path = "runs") -> list[Path]:
    """Final checkpoints of finished or stopped jobs (runs_dir/jobs/<id>/final, each with a model card)."""
    return sorted(p.parent for p in (Path(runs_dir) / "jobs").glob("*/final/model_card.json"))


def ensure_worker_running(runs_dir: str | Path = "runs") -> subprocess.Popen | None:
    """Start `contextrast worker --runs-dir RUNS` in the background unless a live worker serves this
    queue (on this machine, or any machine when the queue is in Redis). → the new process or None.

    Its output goes to runs_dir/worker.log; it runs in its own session, so it outlives the app.
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    if open_store(runs_dir).live_workers():
        return None
    log = open(runs_dir / "worker.log", "a", encoding="utf-8")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen([sys.executable, "-m", "contextrast.cli", "worker", "--runs-dir", str(runs_dir)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        log.close()
