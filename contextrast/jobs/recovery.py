"""Jobs orphaned by a dead worker: running records whose worker is gone become `interrupted`
(resumable), and queued records whose queue message was lost get one again. The worker runs
both at start and every few seconds; readers run the first, so no record shows a dead job as
running."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from contextrast.jobs.processes import pid_alive
from contextrast.jobs.queue import JobQueue
from contextrast.jobs.record import Record
from contextrast.jobs.run_dir import last_checkpoint_iteration, log_line
from contextrast.jobs.store import WORKER_STALE_S, JobStore


def worker_gone(r: Record, now: float | None = None) -> bool:
    """A running record whose worker is gone: on this machine, neither the worker nor its training
    process exists; elsewhere, no heartbeat for WORKER_STALE_S seconds."""
    now = time.time() if now is None else now
    stale = now - (r.get("heartbeat") or r.get("started") or now) > WORKER_STALE_S
    here = r.get("host") == socket.gethostname()
    return stale or (here and not pid_alive(r.get("worker_pid")) and not pid_alive(r.get("child_pid")))


def mark_interrupted_jobs(store: JobStore, records: list[Record] | None = None) -> list[str]:
    """Running jobs whose worker is gone become `interrupted` (resumable). → their ids."""
    now, marked = time.time(), []
    for r in store.list() if records is None else records:
        if r["state"] != "running" or not worker_gone(r, now):
            continue
        worker = r.get("worker")

        def apply(rec: Record, worker: str | None = worker) -> Record | None:
            if rec["state"] != "running" or rec.get("worker") != worker or not worker_gone(rec, now):
                return None
            last = last_checkpoint_iteration(rec.get("run_dir"))
            where = f"its last checkpoint (iteration {last})" if last else "the beginning (no checkpoint yet)"
            rec.update(state="interrupted", ended=now, child_pid=None, request=None, eta_s=None,
                       message=f"worker {worker} died; resume to continue from {where}")
            return rec

        if store.update(r["id"], apply)["state"] == "interrupted":
            marked.append(r["id"])
            if r.get("run_dir"):
                try:
                    log_line(Path(r["run_dir"]), f"job {r['id']} interrupted: worker {worker} is gone")
                except OSError:
                    pass  # the run dir may be another machine's, or read-only here
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
