"""`contextrast worker`: a huey consumer that runs fine-tuning jobs.

Each of `workers` threads runs one job at a time; the training itself happens in a spawned child
process (see contextrast.jobs.tasks), so the worker stays small, CUDA-free and alive when a job
crashes. At start, and every `SCAN_S` seconds, running jobs whose worker died are marked
`interrupted`, and queued jobs whose message was lost (a worker killed between taking it and claiming
the job) are sent again. SIGTERM (or a second Ctrl-C) stops at once: the training children are killed and
their jobs marked `interrupted` (resumable); one Ctrl-C waits for the running jobs to end.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from contextrast.jobs.control import mark_interrupted_jobs, requeue_lost_jobs
from contextrast.jobs.queue import open_queue
from contextrast.jobs.records import HEARTBEAT_S, worker_identity
from contextrast.jobs.tasks import interrupt_running_jobs

SCAN_S = 10.0


def _recover_jobs(queue) -> None:
    """Running jobs of dead workers become `interrupted`; queued jobs whose message was lost get one again."""
    log = logging.getLogger("contextrast.worker")
    for job_id in mark_interrupted_jobs(queue.store):
        log.warning("job %s marked interrupted (its worker died)", job_id)
    for job_id in requeue_lost_jobs(queue):
        log.warning("job %s queued again (its message was lost)", job_id)


def _keep_alive(queue, identity: str, stop: threading.Event) -> None:
    """Beat for this worker; now and then look for jobs orphaned by dead workers."""
    scans = 0.0
    while not stop.is_set():
        try:
            queue.store.beat_worker(identity)
            scans += HEARTBEAT_S
            if scans >= SCAN_S:
                scans = 0.0
                _recover_jobs(queue)
        except Exception:  # noqa: BLE001 - a flaky store must not kill the worker
            logging.getLogger("contextrast.worker").exception("heartbeat failed")
        stop.wait(HEARTBEAT_S)


def run_worker(runs_dir: str | Path = "runs", workers: int = 1, redis_url: str | None = None) -> int:
    """Serve the queue of `runs_dir` until SIGINT/SIGTERM. Blocks; call from the main thread."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1; got {workers}")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s %(levelname)s: %(message)s")
    queue = open_queue(runs_dir, redis_url)
    identity = worker_identity()
    queue.store.beat_worker(identity)
    _recover_jobs(queue)
    where = f"Redis {queue.redis_url}" if queue.redis_url else str(Path(queue.runs_dir) / "queue.sqlite3")
    print(f"contextrast worker {identity}: {workers} job slot(s), queue {where}, runs in {queue.runs_dir}", flush=True)
    stop = threading.Event()
    threading.Thread(target=_keep_alive, args=(queue, identity, stop), daemon=True).start()
    consumer = queue.huey.create_consumer(workers=workers, worker_type="thread", periodic=False,
                                          initial_delay=0.1, backoff=1.15, max_delay=1.0)
    try:
        consumer.run()
    finally:
        stop.set()
        # a SIGTERM lands here with jobs still training: leave them resumable, not orphaned
        for job_id in interrupt_running_jobs(queue.store):
            logging.getLogger("contextrast.worker").warning("job %s interrupted by the shutdown", job_id)
        queue.store.forget_worker(identity)
    return 0
