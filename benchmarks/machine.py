"""Which machine a benchmark ran on, and the physical limit it is judged against.

`machine_slug()` names the results file (`benchmarks/results/<slug>.json`): the GPU name when CUDA is
available, else the CPU model and core count (via `contextrast.engine.provenance.hardware_string`, the
string model cards record). `matmul_peak_gflops()` measures this machine's dense fp32 matmul rate in
the same run as the figures divided by it, so that load from other processes touches both alike.
"""

from __future__ import annotations

import os
import platform
import re
import time
from typing import Any

import torch

from contextrast.engine.provenance import hardware_string


def slugify(text: str) -> str:
    """'AMD EPYC (2 cores)' → 'amd-epyc-2-cores': lower case, runs of other characters → one '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "unknown-machine"


def machine_slug() -> str:
    """Short file-name-safe name of this machine (GPU name, or CPU model + core count)."""
    return slugify(hardware_string())


def load_average() -> tuple[float, float, float] | None:
    """1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """What the figures depend on: hardware, thread count, library versions, and how busy the machine was."""
    load = load_average()
    cores = os.cpu_count() or 1
    return {
        "slug": machine_slug(),
        "hardware": hardware_string(),
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_start": list(load) if load else None,
        # load above the core count means other processes competed for the cores during the run
        "loaded": bool(load and load[0] > 0.5 * cores),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    size: int = 2048,
    repeats: int = 5,
    inner: int = 3,
) -> float:
    """Measured dense matmul rate in GFLOP/s (2·n³ FLOPs per n×n product): best of `repeats` timings of
    `inner` back-to-back `torch.matmul` calls after a warm-up. The best reading is the one least disturbed by
    other processes, and is the practical fp32 limit that the efficiency ratios of inference are divided by."""
    if size < 1 or repeats < 1 or inner < 1:
        raise ValueError(f"size, repeats and inner must be positive; got {size}, {repeats}, {inner}")
    device = torch.device(device)
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up: allocator, BLAS threads, kernel selection
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 * inner / best / 1e9
