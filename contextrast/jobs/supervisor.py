"""The worker's side of a job: claim it, start its training process, watch it, record how it ended.

Process tree of a running job:

    worker (huey consumer, one thread per job slot)
      └─ training process: multiprocessing `spawn` (CUDA-safe) running
         contextrast.jobs.training.training_process_main, or for gpus=N
         `python -m torch.distributed.run --nproc_per_node N -m contextrast.jobs.torchrun_rank …`
         whose ranks train too.

The worker thread never imports torch: it waits for the training process, refreshes the record's
heartbeat, and kills it when a cancel is not honoured within `CANCEL_GRACE_S` (a hung job). A
crashing job kills only its own process, and its record says why (the error, or the signal and the
last lines of train.log). The training process exits by itself when the worker dies (SIGKILL
included), so a restarted worker finds the job `running` under a dead worker and marks it
`interrupted`; resuming it restarts training, which continues from run_dir/last (engine.trainer).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from contextrast.jobs.processes import worker_identity
from contextrast.jobs.record import Record
from contextrast.jobs.run_dir import LOG_FILE, job_run_dir, last_checkpoint_iteration, log_line, read_log_tail
from contextrast.jobs.store import HEARTBEAT_S, REDIS_URL_ENV, JobStore
from contextrast.jobs.training import WATCH_PID_ENV, training_process_main

CANCEL_GRACE_S = 20.0  # a cancelled job that has not stopped by then is killed
POLL_S = 0.5  # how often the worker thread looks at its training process
WORKER_GONE_EXIT = 3  # exit code of a training process that left because its worker died


class TrainingProcess:
    """A spawned `multiprocessing.Process` or a torchrun `Popen` behind one small interface."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc
        self.pid = proc.pid

    def exitcode(self) -> int | None:
        if isinstance(self.proc, subprocess.Popen):
            return self.proc.poll()
        return self.proc.exitcode

    def kill(self) -> None:
        if isinstance(self.proc, subprocess.Popen):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # torchrun and all its ranks
            except ProcessLookupError:
                pass
        else:
            self.proc.kill()

    def wait(self, timeout: float) -> None:
        if isinstance(self.proc, subprocess.Popen):
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        else:
            self.proc.join(timeout)


RUNNING: dict[str, TrainingProcess] = {}  # job id → training process of this worker (for shutdown)


def supervise_job(store: JobStore, runs_dir: str | Path, job_id: str, token: str, redis_url: str = "") -> None:
    """Body of the huey task `run_job(job_id, token)`: one attempt at a job, start to end."""
    me = worker_identity()
    run_dir = job_run_dir(runs_dir, job_id)
    record = store.claim(job_id, token, me)
    if record is None:  # cancelled while queued, already taken, or a stale message after a resume
        return
    store.set(job_id, run_dir=str(run_dir))
    # the attempt continues from last/ (or from scratch): what an earlier attempt logged after it is rewritten
    store.drop_metrics_after(job_id, last_checkpoint_iteration(run_dir) or 0)
    log_line(run_dir, f"job {job_id} claimed by worker {me} (attempt {record['attempts']})")
    gpus = int(record["params"].get("gpus", 1))
    env = {**os.environ, REDIS_URL_ENV: redis_url, WATCH_PID_ENV: str(os.getpid())}
    try:
        if gpus > 1:
            process = start_torchrun(job_id, runs_dir, gpus, run_dir, env)
        else:
            process = start_training_process(job_id, runs_dir, redis_url)
    except Exception as e:  # noqa: BLE001 - any failure to start is the job's failure, not the worker's
        store.set(job_id, state="failed", error=f"could not start training: {e}", ended=time.time(),
                  message="failed to start")
        return
    RUNNING[job_id] = process
    try:
        store.set(job_id, child_pid=process.pid, message="training")
        exitcode, killed = watch(store, job_id, process)
        record_end(store, job_id, run_dir, exitcode, killed)
    finally:
        RUNNING.pop(job_id, None)


def interrupt_running_jobs(store: JobStore) -> list[str]:
    """Worker shutdown (SIGTERM): kill this worker's training processes and mark their jobs
    `interrupted` now, so they can be resumed from their last checkpoint. → the job ids."""
    me, done = worker_identity(), []
    for job_id, process in list(RUNNING.items()):

        def apply(r: Record) -> Record | None:
            if r["state"] != "running" or r.get("worker") != me:
                return None
            r.update(state="interrupted", ended=time.time(), child_pid=None, request=None,
                     message="the worker was shut down; resume to continue from the last checkpoint")
            return r

        store.update(job_id, apply)  # first, so the watching thread's record_end leaves the record alone
        process.kill()
        process.wait(10)
        done.append(job_id)
    return done


def start_training_process(job_id: str, runs_dir: str | Path, redis_url: str) -> TrainingProcess:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=training_process_main, args=(job_id, str(runs_dir), redis_url, os.getpid()),
                       name=f"contextrast-job-{job_id}")
    proc.start()
    return TrainingProcess(proc)


def torchrun_command(job_id: str, runs_dir: str | Path, gpus: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus),
            "-m", "contextrast.jobs.torchrun_rank", "--job", job_id, "--runs-dir", str(runs_dir)]


def start_torchrun(job_id: str, runs_dir: str | Path, gpus: int, run_dir: Path, env: dict[str, str]) -> TrainingProcess:
    log = open(run_dir / LOG_FILE, "a", encoding="utf-8")  # noqa: SIM115 - the process holds it
    try:
        proc = subprocess.Popen(torchrun_command(job_id, runs_dir, gpus), stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    finally:
        log.close()
    return TrainingProcess(proc)


def watch(store: JobStore, job_id: str, process: TrainingProcess) -> tuple[int | None, bool]:
    """Wait for the training process; beat; kill it when a cancel is ignored. → (exit code, killed by us)."""
    last_beat = 0.0
    while process.exitcode() is None:
        process.wait(POLL_S)
        now = time.time()
        if now - last_beat >= HEARTBEAT_S:
            last_beat = now
            try:
                record = store.set(job_id, heartbeat=now)
            except Exception:  # noqa: BLE001 - a store hiccup must not orphan the process
                continue
            if record.get("request") == "cancel" and now - (record.get("request_time") or now) > CANCEL_GRACE_S:
                process.kill()
                process.wait(10)
                return process.exitcode(), True
    return process.exitcode(), False


def exit_reason(exitcode: int | None) -> str:
    """Plain words for how a training process ended without recording an end itself."""
    if exitcode is None:
        return "the training process did not report how it ended"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = {"SIGSEGV": "a crash in native code, often a diverging run or a library bug",
               "SIGKILL": "killed from outside: the system ran out of memory, or someone killed it",
               "SIGABRT": "aborted by a library", "SIGBUS": "a memory access error"}.get(name, "")
        return f"the training process was killed by {name}" + (f" ({why})" if why else "")
    if exitcode == WORKER_GONE_EXIT:
        return "the training process left because its worker was gone"
    return f"the training process exited with code {exitcode}"


def record_end(store: JobStore, job_id: str, run_dir: Path, exitcode: int | None, killed: bool) -> None:
    """Record the end of an attempt unless the training process already did (it writes
    finished / stopped / cancelled, or failed with its error)."""

    def apply(r: Record) -> Record | None:
        if r["state"] != "running":
            return None
        r.update(ended=time.time(), child_pid=None)
        if killed:
            r.update(state="cancelled", message=f"killed after not stopping within {CANCEL_GRACE_S:.0f} s of the cancel")
        else:
            reason = exit_reason(exitcode)
            tail = "\n".join(read_log_tail(run_dir / LOG_FILE, 15))
            r.update(state="failed", error=f"{reason}; the end of train.log:\n{tail}", message=f"failed: {reason}")
        return r

    record = store.update(job_id, apply)
    log_line(run_dir, f"job {job_id} ended: {record['state']} ({record.get('message')})")
