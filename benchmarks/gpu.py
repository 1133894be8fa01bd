"""The GPU section: runs where CUDA is present, and records "not run: no GPU" elsewhere (no figure is made up).

On CUDA: the GPU's limits from its spec sheet with the measured fp32 / bf16 matmul rates beside them
(`benchmarks.limits.run`), inference of the shipped networks (`benchmarks.inference`, AMP variants included),
a training step ce / contextrast in fp32 and AMP bf16 (`benchmarks.training.gpu_steps`), and the worker's
fine-tuning job end to end (`finetune_job`: submitted to a fresh queue, trained by a `contextrast worker`
process, until its record says finished).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

NO_GPU = "not run: no GPU"


def finetune_job(device: str = "cuda", iterations: int = 40, data: str = "toy:size=256x320", base_checkpoint: str = "",
                 batch_size: int = 8, crop: tuple[int, int] = (256, 256), timeout_s: float = 600.0) -> dict[str, Any]:
    """Seconds from submitting a fine-tuning job to its record saying finished, with the worker's own
    images/s (from the job's metrics) and the job's state; the worker process is stopped afterwards."""
    from contextrast.jobs.control import get_job, job_metrics, submit_job

    runs = tempfile.mkdtemp(prefix="bench-finetune-")
    worker = None
    try:
        params = {"data": data, "base_checkpoint": base_checkpoint, "loss": "contextrast", "iterations": iterations,
                  "batch_size": batch_size, "crop": list(crop), "device": device, "name": "benchmark"}
        t0 = time.perf_counter()
        record = submit_job(params, runs)
        worker = subprocess.Popen([sys.executable, "-m", "contextrast.cli", "worker", "--runs-dir", runs],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        state = record["state"]
        while time.perf_counter() - t0 < timeout_s:
            record = get_job(record["id"], runs)
            state = record["state"]
            if state in ("finished", "failed", "cancelled", "stopped", "interrupted"):
                break
            time.sleep(0.5)
        seconds = time.perf_counter() - t0
        rates = [m["images_per_s"] for m in job_metrics(record["id"], runs) if "images_per_s" in m]
        return {"state": state, "seconds": seconds, "iterations": iterations, "batch_size": batch_size,
                "device": device, "data": data, "base_checkpoint": Path(base_checkpoint).name if base_checkpoint else "",
                "images_per_s": rates[-1] if rates else None, "error": record.get("error")}
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)
        shutil.rmtree(runs, ignore_errors=True)


def run(quick: bool = False, checkpoints_dir: str | Path | None = None) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"skipped": NO_GPU}
    from benchmarks import inference, limits, training

    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0)}
    section = limits.run(quick, device="cuda")
    out["limit"], out["probes"] = section["limit"], section["probes"]
    kwargs = {"checkpoints_dir": checkpoints_dir} if checkpoints_dir is not None else {}
    out["inference"] = inference.run(quick, device="cuda", limit=out["limit"], **kwargs)
    out["training"] = training.gpu_steps(quick)
    from contextrast.engine.checkpoint import read_card

    shipped = inference.shipped_checkpoints(*([checkpoints_dir] if checkpoints_dir else []))
    base = next((p for p in shipped if str(read_card(p).dataset).startswith("toy")), None)  # the job's data is toy
    out["finetune_job"] = finetune_job("cuda", 40 if quick else 200, base_checkpoint=str(base) if base else "")
    return out
