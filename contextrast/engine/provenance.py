"""Provenance for model cards and benchmark results: which code, on which machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch


def code_version() -> str:
    """Package version, plus `+g<short hash>` (and `-dirty`) when the package sits in a git work tree."""
    from contextrast import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0 or not commit.stdout.strip():
            return __version__
        version = f"{__version__}+g{commit.stdout.strip()}"
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if status.returncode == 0 and status.stdout.strip():
            version += "-dirty"
        return version
    except (OSError, subprocess.SubprocessError):
        return __version__


def hardware_string() -> str:
    """GPU name(s) when CUDA is available, else the CPU model and core count."""
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"{len(names)}× {names[0]}" if len(set(names)) == 1 and len(names) > 1 else ", ".join(names)
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    return f"{cpu} ({os.cpu_count()} cores)"
