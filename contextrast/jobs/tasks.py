"""The huey task: claim a job, train it in a child process, watch it, record how it ended.

Process tree of a running job:

    worker (huey consumer, one thread per job slot)
      └─ training child: multiprocessing `spawn` (CUDA-safe) running `train_job`, or for gpus=N
         `python -m torch.distributed.run --nproc_per_node N -m contextrast.jobs.entry …` whose
         ranks run `train_job` too.

The worker thread never imports torch: it waits for the child, refreshes the record's heartbeat,
and kills the child when a cancel is not honoured within `CANCEL_GRACE_S` (a hung job). A crashing
job kills only its child. The child exits by itself when the worker dies (SIGKILL included), so a
restarted worker finds the job `running` under a dead worker and marks it `interrupted`; resuming
it restarts training, which continues from run_dir/last (engine.trainer).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from contextrast.jobs.records import HEARTBEAT_S, REDIS_URL_ENV, JobStore, open_store, pid_alive, worker_identity

CANCEL_GRACE_S = 20.0  # a cancelled job that has not stopped by then is killed
POLL_S = 0.5  # how often the training hook may look at the record for stop/cancel requests
WATCH_PID_ENV = "CONTEXTRAST_WATCH_PID"
LOG_TAIL_LINES = 20  # progress lines kept in the job record
RUNNING: dict[str, _Child] = {}  # job id → training child of this worker process (for shutdown)


def job_run_dir(runs_dir: str | Path, job_id: str) -> Path:
    """Where a job trains: runs_dir/jobs/<id>/ (metrics.jsonl, train.log, last/, best/, final/)."""
    return Path(runs_dir).resolve() / "jobs" / job_id


def log_line(run_dir: Path, text: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "train.log", "a", encoding="utf-8") as f:
        f.write(time.strftime("[%H:%M:%S] ") + text + "\n")


# --------------------------------------------------------------------------------------------- worker side


def execute_job(store: JobStore, runs_dir: str | Path, job_id: str, token: str, redis_url: str = "") -> None:
    """Body of the huey task `run_job(job_id, token)`."""
    me = worker_identity()
    run_dir = job_run_dir(runs_dir, job_id)
    record = store.claim(job_id, token, me)
    if record is None:  # cancelled while queued, already taken, or a stale message after a resume
        return
    store.set(job_id, run_dir=str(run_dir))
    log_line(run_dir, f"job {job_id} claimed by worker {me} (attempt {record['attempts']})")
    gpus = int(record["params"].get("gpus", 1))
    env = {**os.environ, REDIS_URL_ENV: redis_url, WATCH_PID_ENV: str(os.getpid())}
    try:
        if gpus > 1:
            child = _start_torchrun(job_id, runs_dir, gpus, run_dir, env)
        else:
            child = _start_spawned(job_id, runs_dir, redis_url)
    except Exception as e:  # noqa: BLE001 - any failure to start is the job's failure, not the worker's
        store.set(job_id, state="failed", error=f"could not start training: {e}", ended=time.time(),
                  message="failed to start")
        return
    RUNNING[job_id] = child
    try:
        store.set(job_id, child_pid=child.pid, message="training")
        exitcode, killed = _watch(store, job_id, child)
        _finish(store, job_id, run_dir, exitcode, killed)
    finally:
        RUNNING.pop(job_id, None)


def interrupt_running_jobs(store: JobStore) -> list[str]:
    """Worker shutdown (SIGTERM): kill this worker's training children and mark their jobs
    `interrupted` now, so they can be resumed from their last checkpoint. → the job ids."""
    me, done = worker_identity(), []
    for job_id, child in list(RUNNING.items()):

        def apply(r: dict[str, Any]) -> dict[str, Any] | None:
            if r["state"] != "running" or r.get("worker") != me:
                return None
            r.update(state="interrupted", ended=time.time(), child_pid=None, request=None,
                     message="the worker was shut down; resume to continue from the last checkpoint")
            return r

        store.update(job_id, apply)  # first, so the watching thread's _finish leaves the record alone
        child.kill()
        child.wait(10)
        done.append(job_id)
    return done


class _Child:
    """A spawned Process or a torchrun Popen behind one small interface."""

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


def _start_spawned(job_id: str, runs_dir: str | Path, redis_url: str) -> _Child:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=child_main, args=(job_id, str(runs_dir), redis_url, os.getpid()),
                       name=f"contextrast-job-{job_id}")
    proc.start()
    return _Child(proc)


def torchrun_command(job_id: str, runs_dir: str | Path, gpus: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus),
            "-m", "contextrast.jobs.entry", "--job", job_id, "--runs-dir", str(runs_dir)]


def _start_torchrun(job_id: str, runs_dir: str | Path, gpus: int, run_dir: Path, env: dict[str, str]) -> _Child:
    log = open(run_dir / "train.log", "a", encoding="utf-8")  # noqa: SIM115 - the child holds it
    try:
        proc = subprocess.Popen(torchrun_command(job_id, runs_dir, gpus), stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    finally:
        log.close()
    return _Child(proc)


def _watch(store: JobStore, job_id: str, child: _Child) -> tuple[int | None, bool]:
    """Wait for the child; beat; kill it when a cancel is ignored. → (exit code, killed by us)."""
    last_beat = 0.0
    while child.exitcode() is None:
        child.wait(POLL_S)
        now = time.time()
        if now - last_beat >= HEARTBEAT_S:
            last_beat = now
            try:
                record = store.set(job_id, heartbeat=now)
            except Exception:  # noqa: BLE001 - a store hiccup must not orphan the child
                continue
            if record.get("request") == "cancel" and now - (record.get("request_time") or now) > CANCEL_GRACE_S:
                child.kill()
                child.wait(10)
                return child.exitcode(), True
    return child.exitcode(), False


def _finish(store: JobStore, job_id: str, run_dir: Path, exitcode: int | None, killed: bool) -> None:
    """Record the end of an attempt unless the child already did (it writes finished/stopped/cancelled)."""

    def apply(r: dict[str, Any]) -> dict[str, Any] | None:
        if r["state"] != "running":
            return None
        r.update(ended=time.time(), child_pid=None)
        if killed:
            r.update(state="cancelled", message=f"killed after not stopping within {CANCEL_GRACE_S:.0f} s of the cancel")
        else:
            tail = "\n".join(read_log_tail(run_dir / "train.log", 15))
            r.update(state="failed", error=f"training exited with code {exitcode}\n{tail}",
                     message=f"failed (exit code {exitcode})")
        return r

    record = store.update(job_id, apply)
    log_line(run_dir, f"job {job_id} ended: {record['state']} ({record.get('message')})")


def read_log_tail(path: str | Path, lines: int = 40) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------------------------------------- child side


def _exit_when_gone(pid: int, parent: int) -> None:
    """Daemon thread: leave at once when the worker is gone, so no orphan trains on."""
    while True:
        time.sleep(POLL_S)
        if not pid_alive(pid) or (parent and os.getppid() != parent):
            os._exit(3)


def child_main(job_id: str, runs_dir: str, redis_url: str, worker_pid: int) -> None:
    """Entry of the spawned training process: output to train.log, then `train_job`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the worker's terminal is the worker's business
    threading.Thread(target=_exit_when_gone, args=(worker_pid, os.getppid()), daemon=True).start()
    run_dir = job_run_dir(runs_dir, job_id)
    log = open(run_dir / "train.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    train_job(open_store(runs_dir, redis_url), runs_dir, job_id)


class RequestPoller:
    """`should_stop` for the trainer: reads the record's request at most every POLL_S seconds, and
    only when the record changed. Under torchrun every rank reads it and they agree on the most
    severe request (all_reduce MAX), since all ranks must leave the loop at the same iteration."""

    CODES = {None: 0, "stop": 1, "cancel": 2}

    def __init__(self, store: JobStore, job_id: str) -> None:
        self.store, self.job_id = store, job_id
        self.next_check, self.version, self.request = 0.0, None, None

    def _local(self) -> str | None:
        now = time.monotonic()
        if now >= self.next_check:
            self.next_check = now + POLL_S
            version = self.store.request_version(self.job_id)
            if version != self.version:
                self.version = version
                self.request = self.store.get(self.job_id).get("request")
        return self.request

    def __call__(self) -> str | None:
        request = self._local()
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            import torch

            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            code = torch.tensor([self.CODES.get(request, 0)], device=device)
            dist.all_reduce(code, op=dist.ReduceOp.MAX)
            request = {v: k for k, v in self.CODES.items()}[int(code.item())]
        return request


def progress_fields(log: dict[str, Any], iterations: int, batch_size: int) -> dict[str, Any]:
    """Record fields from one trainer log record: iteration, progress, ETA (from images/s)."""
    if "val" in log:
        return {"last_val": {"iter": log["iter"], **log["val"]}}
    it = int(log["iter"])
    speed = log.get("images_per_s") or 0.0
    eta = (iterations - it) * batch_size / speed if speed > 0 else None
    return {"iteration": it, "progress": round(it / iterations, 4), "images_per_s": speed,
            "eta_s": None if eta is None else round(eta, 1), "last_log": log}


def train_job(store: JobStore, runs_dir: str | Path, job_id: str) -> None:
    """Train job `job_id` with hooks that report progress to and take requests from its record."""
    from contextrast.config import ExperimentConfig, replace
    from contextrast.engine.trainer import TrainHooks, train

    record = store.get(job_id)
    run_dir = job_run_dir(runs_dir, job_id)
    cfg = ExperimentConfig.from_dict(record["config"])
    cfg = replace(cfg, train=replace(cfg.train, run_dir=str(run_dir)))
    t = cfg.train
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        print(f"rank {rank} of {world} processes (torchrun)", flush=True)

    recent: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)

    def on_log(log: dict[str, Any]) -> None:
        store.append_metrics(job_id, log)
        if "val" in log:
            line = f"iter {log['iter']}/{t.iterations}  val mIoU {100 * (log['val'].get('miou') or 0):.2f}%"
        else:
            terms = "  ".join(f"{k} {v:.4f}" for k, v in log.items()
                              if k not in ("iter", "lr", "images_per_s", "elapsed_s") and isinstance(v, float))
            line = f"iter {log['iter']}/{t.iterations}  {terms}  lr {log['lr']:.2e}  {log['images_per_s']:.1f} img/s"
        print(line, flush=True)
        recent.append(line)
        # the record carries the latest lines too, for an app that cannot see this machine's train.log
        store.set(job_id, log_tail=list(recent), **progress_fields(log, t.iterations, t.batch_size))

    try:
        result = train(cfg, TrainHooks(on_log=on_log, should_stop=RequestPoller(store, job_id), progress_bar=False))
    except BaseException as e:
        traceback.print_exc()
        error = f"{type(e).__name__}: {e}"
        if rank == 0:
            store.update(job_id, lambda r: r if r["state"] != "running" else {
                **r, "state": "failed", "error": error, "ended": time.time(), "message": f"failed: {error}"[:300],
                "child_pid": None})
        raise
    if rank != 0:
        return
    messages = {"finished": "finished", "stopped": "stopped and saved", "cancelled": "cancelled (no checkpoint)"}
    store.set(job_id, state=result.status, iteration=result.iteration, best_miou=result.best_miou,
              checkpoint=str(result.final_checkpoint) if result.final_checkpoint else None,
              progress=round(result.iteration / t.iterations, 4), eta_s=None, ended=time.time(), request=None,
              child_pid=None, message=messages[result.status])
    print(f"job {job_id} {messages[result.status]} at iteration {result.iteration}", flush=True)
