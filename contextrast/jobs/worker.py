"""`contextrast worker`: a huey consumer that runs fine-tuning jobs, and `ensure_worker_running`,
which starts one in the background for the app.

Each of `workers` threads runs one job at a time; the training itself happens in a process of its
own (see contextrast.jobs.supervisor), so the worker stays small, CUDA-free and alive when a job
crashes. At start, and every `SCAN_S` seconds, running jobs whose worker died are marked
`interrupted`, and queued jobs whose message was lost (a worker killed between taking it and claiming
the job) are sent again. SIGTERM (or a second Ctrl-C) stops at once: the training processes are
killed and their jobs marked `interrupted` (resumable); one Ctrl-C waits for the running jobs to end.
A worker the app started (`--exit-with-parent`) does the same as one Ctrl-C when the app is gone: it finishes
its running jobs, then exits, so killing the app leaves no worker behind; queued jobs wait for the next one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from contextrast.jobs.message import RefusedMessage
from contextrast.jobs.processes import worker_identity
from contextrast.jobs.queue import JobQueue, open_queue
from contextrast.jobs.recovery import mark_interrupted_jobs, requeue_lost_jobs
from contextrast.jobs.run_dir import check_runs_dir_writable
from contextrast.jobs.store import HEARTBEAT_S, open_store
from contextrast.jobs.supervisor import interrupt_running_jobs

SCAN_S = 10.0
WORKER_LOG = "worker.log"
log = logging.getLogger("contextrast.worker")


def _recover_jobs(queue: JobQueue) -> None:
    """Running jobs of dead workers become `interrupted`; queued jobs whose message was lost get one again."""
    for job_id in mark_interrupted_jobs(queue.store):
        log.warning("job %s marked interrupted (its worker died)", job_id)
    for job_id in requeue_lost_jobs(queue):
        log.warning("job %s queued again (its message was lost)", job_id)


def _keep_alive(queue: JobQueue, identity: str, stop: threading.Event, parent: int | None = None) -> None:
    """Beat for this worker; now and then look for jobs orphaned by dead workers. With `parent` (a pid), stop
    gracefully once this process's parent is no longer that process (the app that started it is gone)."""
    scans = 0.0
    while not stop.is_set():
        if parent is not None and os.getppid() != parent:
            log.warning("the app that started this worker is gone: finishing the running jobs, then exiting")
            parent = None
            os.kill(os.getpid(), signal.SIGINT)  # huey's graceful stop: running jobs end, nothing new starts
        try:
            queue.store.beat_worker(identity)
            scans += HEARTBEAT_S
            if scans >= SCAN_S:
                scans = 0.0
                _recover_jobs(queue)
        except Exception:  # noqa: BLE001 - a flaky store must not kill the worker
            log.exception("heartbeat failed")
        stop.wait(HEARTBEAT_S)


def refusals_in_one_line(record: logging.LogRecord) -> bool:
    """Logging filter: a refused queue message is one warning line, not huey's traceback."""
    if record.exc_info and isinstance(record.exc_info[1], RefusedMessage):
        record.msg, record.args = f"{record.getMessage()}: {record.exc_info[1]}", ()
        record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.WARNING, "WARNING"
    return True


def run_worker(runs_dir: str | Path = "runs", workers: int = 1, redis_url: str | None = None,
               exit_with_parent: bool = False) -> int:
    """Serve the queue of `runs_dir` until SIGINT/SIGTERM (or, with `exit_with_parent`, until the process that
    started it is gone and the running jobs have ended). Blocks; call from the main thread."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1; got {workers}")
    check_runs_dir_writable(runs_dir)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s %(levelname)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(refusals_in_one_line)
    queue = open_queue(runs_dir, redis_url)
    identity = worker_identity()
    queue.store.beat_worker(identity)
    _recover_jobs(queue)
    print(f"contextrast worker {identity}: {workers} job slot(s), queue {queue.where()}, runs in {queue.runs_dir}",
          flush=True)
    stop = threading.Event()
    parent = os.getppid() if exit_with_parent else None
    threading.Thread(target=_keep_alive, args=(queue, identity, stop, parent), daemon=True).start()
    consumer = queue.huey.create_consumer(workers=workers, worker_type="thread", periodic=False,
                                          initial_delay=0.1, backoff=1.15, max_delay=1.0)
    try:
        consumer.run()
    finally:
        stop.set()
        # a SIGTERM lands here with jobs still training: leave them resumable, not orphaned
        for job_id in interrupt_running_jobs(queue.store):
            log.warning("job %s interrupted by the shutdown", job_id)
        queue.store.forget_worker(identity)
    return 0


def ensure_worker_running(runs_dir: str | Path = "runs", exit_with_parent: bool = False) -> subprocess.Popen | None:
    """Start `contextrast worker --runs-dir RUNS` in the background unless a live worker serves this
    queue (on this machine, or any machine when the queue is in Redis). → the new process or None.

    Its output goes to runs_dir/worker.log; it runs in its own session, so a Ctrl-C of the caller does not reach
    it. With `exit_with_parent` (the app) it exits once the caller is gone and its running jobs have ended;
    without (`jobs submit`, which returns at once) it stays.
    ValueError when the runs dir cannot be written.
    """
    runs = check_runs_dir_writable(runs_dir)
    if open_store(runs).live_workers():
        return None
    out = open(runs / WORKER_LOG, "a", encoding="utf-8")  # noqa: SIM115 - handed to the child
    try:
        command = [sys.executable, "-m", "contextrast.cli", "worker", "--runs-dir", str(runs)]
        return subprocess.Popen(command + (["--exit-with-parent"] if exit_with_parent else []),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        out.close()
