"""The training process's side of a job: train it through `engine.trainer.train` with hooks that
report progress to its record and take stop/cancel requests from it, and record how it failed.

A CPU job's process runs under a memory limit (`RLIMIT_DATA`, `limits.Limits.job_memory_bytes`), so
a runaway job fails alone with "out of memory" instead of taking the machine down. CUDA jobs get
no such limit, since the CUDA runtime maps far more memory than it uses; their device memory is
bounded by the GPU itself.
"""

from __future__ import annotations

import collections
import faulthandler
import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from contextrast import limits
from contextrast.jobs.processes import exit_when_gone
from contextrast.jobs.record import Record
from contextrast.jobs.run_dir import LOG_FILE, job_run_dir
from contextrast.jobs.store import JobStore, open_store

WATCH_PID_ENV = "CONTEXTRAST_WATCH_PID"  # a torchrun rank leaves when this process (the worker) is gone
POLL_S = 0.5  # how often the training hook may look at the record for stop/cancel requests
LOG_TAIL_LINES = 20  # progress lines kept in the job record


def training_process_main(job_id: str, runs_dir: str, redis_url: str, worker_pid: int) -> None:
    """Entry of the spawned training process: output to train.log, then `train_job`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the worker's terminal is the worker's business
    threading.Thread(target=exit_when_gone, args=(worker_pid, os.getppid()), daemon=True).start()
    run_dir = job_run_dir(runs_dir, job_id)
    log = open(run_dir / LOG_FILE, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    faulthandler.enable(log)  # a crash in native code still leaves its Python stack in train.log
    train_job(open_store(runs_dir, redis_url), runs_dir, job_id)


def limit_memory(device_type: str) -> int | None:
    """Cap this process's data memory for a CPU job. → the limit in bytes, or None (none set)."""
    if device_type != "cpu":
        return None
    limit = limits.current().job_memory_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return limit


def failure_text(error: BaseException, memory_limit: int | None) -> str:
    """One line for the record: the error, in words when it is running out of memory."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, MemoryError) or "can't allocate memory" in str(error):
        budget = f" of {memory_limit / 2**30:.1f} GiB (CONTEXTRAST_JOB_MEMORY_GB)" if memory_limit else ""
        text = (f"out of memory: the job needed more than its limit{budget}; use a smaller batch, crop or model. "
                f"({text.splitlines()[0][:200]})")
    return text


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


def progress_line(log: dict[str, Any], iterations: int) -> str:
    """The train.log line of one trainer log record."""
    if "val" in log:
        return f"iter {log['iter']}/{iterations}  val mIoU {100 * (log['val'].get('miou') or 0):.2f}%"
    terms = "  ".join(f"{k} {v:.4f}" for k, v in log.items()
                      if k not in ("iter", "lr", "images_per_s", "elapsed_s") and isinstance(v, float))
    return f"iter {log['iter']}/{iterations}  {terms}  lr {log['lr']:.2e}  {log['images_per_s']:.1f} img/s"


def train_job(store: JobStore, runs_dir: str | Path, job_id: str) -> None:
    """Train job `job_id` with hooks that report progress to and take requests from its record."""
    from contextrast.config import ExperimentConfig, replace
    from contextrast.engine.inference import resolve_device
    from contextrast.engine.trainer import TrainHooks, train

    record = store.get(job_id)
    run_dir = job_run_dir(runs_dir, job_id)
    cfg = ExperimentConfig.from_dict(record["config"])
    cfg = replace(cfg, train=replace(cfg.train, run_dir=str(run_dir)))
    t = cfg.train
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        print(f"rank {rank} of {world} processes (torchrun)", flush=True)
    memory_limit = limit_memory(resolve_device(t.device).type)
    if memory_limit and rank == 0:
        print(f"memory limit of this training process: {memory_limit / 2**30:.1f} GiB", flush=True)

    recent: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)

    def on_log(log: dict[str, Any]) -> None:
        store.append_metrics(job_id, log)
        line = progress_line(log, t.iterations)
        print(line, flush=True)
        recent.append(line)
        # the record carries the latest lines too, for an app that cannot see this machine's train.log
        store.set(job_id, log_tail=list(recent), **progress_fields(log, t.iterations, t.batch_size))

    try:
        result = train(cfg, TrainHooks(on_log=on_log, should_stop=RequestPoller(store, job_id), progress_bar=False))
    except BaseException as e:
        traceback.print_exc()
        error = failure_text(e, memory_limit)
        print(f"job {job_id} failed: {error}", flush=True)

        def failed(r: Record) -> Record | None:
            if r["state"] != "running":
                return None
            r.update(state="failed", error=error, ended=time.time(), message=f"failed: {error}"[:300], child_pid=None)
            return r

        if rank == 0:
            store.update(job_id, failed)
        raise
    if rank != 0:
        return
    messages = {"finished": "finished", "stopped": "stopped and saved", "cancelled": "cancelled (no checkpoint)"}
    store.set(job_id, state=result.status, iteration=result.iteration, best_miou=result.best_miou,
              checkpoint=str(result.final_checkpoint) if result.final_checkpoint else None,
              progress=round(result.iteration / t.iterations, 4), eta_s=None, ended=time.time(), request=None,
              child_pid=None, message=messages[result.status])
    print(f"job {job_id} {messages[result.status]} at iteration {result.iteration}", flush=True)
