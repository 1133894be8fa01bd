"""Which operators dominate a piece of work: one `torch.profiler` pass, summarised as JSON-able rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile


def top_ops(fn: Callable[[], Any], count: int = 8, device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Run `fn` once under the profiler and return the `count` operators with the most self time:
    [{op, calls, self_ms, share}] where share is the fraction of all operators' self time
    (CUDA kernel time on a GPU, CPU time otherwise)."""
    on_gpu = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as prof:
        fn()
        if on_gpu:
            torch.cuda.synchronize()
    events = prof.key_averages()

    def self_us(e) -> float:
        return float(e.self_device_time_total if on_gpu else e.self_cpu_time_total)

    total = sum(self_us(e) for e in events) or 1.0
    ranked = sorted(events, key=self_us, reverse=True)[:count]
    return [
        {"op": e.key, "calls": int(e.count), "self_ms": self_us(e) / 1e3, "share": self_us(e) / total}
        for e in ranked
    ]
