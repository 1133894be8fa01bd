"""Which machine a benchmark ran on, and how busy it was.

`machine_slug()` names the results file (`benchmarks/results/<slug>.json`): the GPU name when CUDA is
available, else the CPU model, family/model numbers, widest vector extension and core count, so that two
machines a hypervisor calls by the same model name ("AMD EPYC") but with other vector units do not share a
file (`hardware_string`, the string model cards record, names a GPU). The limit figures are judged against is derived in `benchmarks.limits`.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import torch

from contextrast import allocator
from contextrast.engine.provenance import hardware_string


def slugify(text: str) -> str:
    """'AMD EPYC (2 cores)' → 'amd-epyc-2-cores': lower case, runs of other characters → one '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "unknown-machine"


def cpu_description() -> str:
    """'AMD EPYC family 25 model 1 avx2 (2 cores)': model name, family/model, widest vector extension, cores."""
    from benchmarks.limits import read_cpuinfo

    info = read_cpuinfo()
    isa = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in info.flags), "")
    isa = {"avx512f": "avx512"}.get(isa, isa)
    family = f" family {info.family} model {info.model}" if info.family is not None else ""
    name = info.model_name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}{family} {isa} ({os.cpu_count()} cores)".replace("  ", " ")


def machine_slug() -> str:
    """Short file-name-safe name of this machine (GPU name, or CPU description)."""
    return slugify(hardware_string() if torch.cuda.is_available() else cpu_description())


def load_average() -> tuple[float, float, float] | None:
    """1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def _parent_and_cpu_seconds(stat: Path) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) from a /proc/<pid>/stat file; None once the process is gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds process `pid` (all its threads) has used so far (Linux /proc; None elsewhere or when gone)."""
    found = _parent_and_cpu_seconds(Path(f"/proc/{pid}/stat"))
    return None if found is None else found[1]


def process_cpu_seconds() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds so far)} of every process (Linux /proc; empty elsewhere)."""
    found = {int(stat.parent.name): _parent_and_cpu_seconds(stat) for stat in Path("/proc").glob("[0-9]*/stat")}
    return {pid: v for pid, v in found.items() if v is not None}


def others_cpu_seconds(before: dict[int, tuple[int, float]], after: dict[int, tuple[int, float]],
                       root: int | None = None) -> float:
    """CPU seconds that processes outside `root`'s tree (default: this process and everything it started) used
    between two `process_cpu_seconds` snapshots. Only processes alive at the first snapshot count: the apps and
    browsers a section starts are its own, even when they leave its tree (Chromium re-parents some of its
    processes). Unlike the load average, the benchmark's own threads do not count, so a run on an idle machine
    reads idle."""
    root = os.getpid() if root is None else root
    ours, grew = {root}, True
    while grew:
        grew = False
        for pid, (ppid, _) in (*before.items(), *after.items()):
            if ppid in ours and pid not in ours:
                ours.add(pid)
                grew = True
    return sum(max(0.0, cpu - before[pid][1]) for pid, (_, cpu) in after.items() if pid in before and pid not in ours)


def machine_info() -> dict[str, Any]:
    """What the figures depend on: hardware, thread count, library versions, and how busy the machine was."""
    load = load_average()
    cores = os.cpu_count() or 1
    return {
        "slug": machine_slug(),
        "hardware": hardware_string(),
        "cpu": cpu_description(),
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "allocator": allocator.describe(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_start": list(load) if load else None,
    }
