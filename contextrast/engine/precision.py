"""Arithmetic precision of inference: fp32, or bf16 autocast where the CPU has bf16 units.

The default (`auto`) was chosen by measurement (`python -m benchmarks --only precision`, docs/performance.md):
bf16 autocast + channels_last is the CPU default only where the CPU has bf16 dot-product units (AVX512_BF16
or AMX, read from /proc/cpuinfo) and, on the shipped CamVid model over the val split, it keeps the argmax of
≥ `AGREEMENT_FLOOR` of the pixels and the mIoU within `MIOU_TOLERANCE` of fp32 (`BF16_KEEPS_PREDICTIONS`
records that verdict). Without bf16 units bf16 is emulated in software and several times slower than
fp32, so fp32 is the default there. On CUDA the default stays fp32. `--precision fp32` turns bf16 off.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
AGREEMENT_FLOOR = 0.995  # share of pixels whose argmax must not change under bf16
MIOU_TOLERANCE = 0.001  # 0.1 point of mIoU
# The measured verdict of the criterion above on camvid-scrnet-contextrast (val): see docs/performance.md,
# section "precision". Set to False if a new model or measurement fails it.
BF16_KEEPS_PREDICTIONS = True
BF16_UNIT_FLAGS = ("amx_bf16", "avx512_bf16")


@lru_cache(maxsize=1)
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The `flags` of the first CPU in /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_bf16_units(flags: frozenset[str] | None = None) -> str | None:
    """'amx_bf16' or 'avx512_bf16' when the CPU computes bf16 in hardware, else None (bf16 is emulated)."""
    flags = cpu_flags() if flags is None else flags
    return next((name for name in BF16_UNIT_FLAGS if name in flags), None)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """'auto' | 'fp32' | 'bf16' → 'fp32' or 'bf16' for `device` (see the module docstring for 'auto')."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision != "auto":
        return precision
    on_cpu = torch.device(device).type == "cpu"
    return "bf16" if on_cpu and BF16_KEEPS_PREDICTIONS and cpu_bf16_units() is not None else "fp32"


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """The autocast context of a resolved precision ('fp32': none)."""
    if precision == "fp32":
        return nullcontext()
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"resolve the precision first ('fp32' or 'bf16'); got {precision!r}")
