"""Speed of the Contextrast loss (METHOD.md §2: "training-time only"; the loss must not dominate a step).

Times, on CPU:
1. one training step (forward + backward + SGD step) of the light SCRNet (`build_model({})`) at
   B×3×360×480 with `ce` and with `contextrast` past warm-up (embeddings on): the ratio should be ≤ 1.15;
2. the contrastive loss alone (forward + backward) against the loop-based reference
   (tests/reference_ccl.py) on the same inputs: the vectorised one should be ≥ 5× faster.

    python -m benchmarks.loss_speed [--quick] [--threads N]

`run(quick, threads) -> dict` returns the numbers for the benchmark aggregator. On shared, loaded cores pass
`--threads 1`: multi-threaded CPU timings there mostly measure the other processes.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from contextrast.config import LossConfig
from contextrast.losses import build_loss
from contextrast.models import build_model

SIZE = (360, 480)
REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference_ccl.py"


def _load_reference():
    spec = importlib.util.spec_from_file_location("reference_ccl", REFERENCE)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"reference implementation {REFERENCE} not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _inputs(batch: int, num_classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and blocky labels (16×16 blocks of one class, a strip of ignore) so that BANE finds regions."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, *SIZE, generator=g)
    blocks = torch.randint(0, num_classes, (batch, SIZE[0] // 16 + 1, SIZE[1] // 16 + 1), generator=g)
    y = blocks.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, : SIZE[0], : SIZE[1]].contiguous()
    y[:, :8] = 255
    return x, y


def _time(fn, repeats: int, clock=time.perf_counter) -> float:
    """Fastest of `repeats` calls after one warm-up call."""
    return _time_interleaved([fn], repeats, clock)[0]


def _time_interleaved(fns: list, repeats: int, clock=time.perf_counter) -> list[float]:
    """Fastest of `repeats` calls of each function after a warm-up call, calls alternating so that load
    changes hit all alike. The minimum is the reading least disturbed by other processes on shared cores;
    `clock=time.process_time` (CPU seconds of this process, all threads) is steadier still there."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = clock()
            fn()
            best[i] = min(best[i], clock() - t0)
    return best


def train_step(loss_name: str, batch: int):
    """A closure running one SGD step of a fresh light SCRNet with loss `loss_name`."""
    torch.manual_seed(0)
    model = build_model({})
    model.train()
    loss_fn = build_loss(LossConfig(name=loss_name), model.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = _inputs(batch, model.num_classes)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = model(x, return_embeddings=loss_fn.needs_embeddings)
        loss_fn(out, y, progress=1.0).total.backward()
        opt.step()

    return step


def time_loss_alone(batch: int, repeats: int) -> tuple[float, float]:
    """(vectorised, reference) seconds for CCL forward + backward on the same embeddings."""
    reference = _load_reference()
    torch.manual_seed(0)
    model = build_model({})
    model.eval()
    x, y = _inputs(batch, model.num_classes)
    with torch.no_grad():
        out = model(x, return_embeddings=True)
    cfg = LossConfig(name="contextrast")
    loss_fn = build_loss(cfg, model.num_classes)
    embeddings = [e.detach().clone().requires_grad_() for e in out.embeddings]
    out.embeddings = embeddings

    def vectorised() -> None:
        for e in embeddings:
            e.grad = None
        loss_fn(out, y, progress=1.0).total.backward()

    def plain() -> None:
        for e in embeddings:
            e.grad = None
        ce = F.cross_entropy(out.logits, y, ignore_index=255)
        total = ce + cfg.alpha * reference.reference_ccl(out.logits, embeddings, y, cfg, model.num_classes)
        total.backward()

    return _time(vectorised, repeats), _time(plain, 1)


def run(quick: bool = False, threads: int | None = None) -> dict[str, Any]:
    """`threads`: torch intra-op threads for the timings (None: leave torch's setting); restored afterwards."""
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be a positive integer; got {threads!r}")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _run(quick)
    finally:
        torch.set_num_threads(previous)


def _run(quick: bool) -> dict[str, Any]:
    batch = 2 if quick else 8
    repeats = 3
    steps = [train_step("ce", batch), train_step("contextrast", batch)]
    t_ce, t_ctx = _time_interleaved(steps, repeats)
    cpu_ce, cpu_ctx = _time_interleaved(steps, repeats, time.process_time)
    t_vec, t_ref = time_loss_alone(batch, repeats)
    result = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "input": [batch, 3, *SIZE],
        "step_ce_s": t_ce,
        "step_contextrast_s": t_ctx,
        "step_ratio": t_ctx / t_ce,
        "step_cpu_ce_s": cpu_ce,
        "step_cpu_contextrast_s": cpu_ctx,
        "step_cpu_ratio": cpu_ctx / cpu_ce,
        "step_ratio_target": 1.15,
        "loss_vectorised_s": t_vec,
        "loss_reference_s": t_ref,
        "loss_speedup": t_ref / t_vec,
        "loss_speedup_target": 5.0,
    }
    print(f"loss speed, CPU ({result['threads']} threads), input {batch}×3×{SIZE[0]}×{SIZE[1]}, fastest of {repeats}")
    print(f"{'measure':<42}{'seconds':>10}")
    print(f"{'train step, ce':<42}{t_ce:>10.3f}")
    print(f"{'train step, contextrast (past warm-up)':<42}{t_ctx:>10.3f}")
    print(f"{'  wall ratio (target ≤ 1.15)':<42}{t_ctx / t_ce:>10.3f}")
    print(f"{'train step, ce (CPU seconds)':<42}{cpu_ce:>10.3f}")
    print(f"{'train step, contextrast (CPU seconds)':<42}{cpu_ctx:>10.3f}")
    print(f"{'  CPU-time ratio (target ≤ 1.15)':<42}{cpu_ctx / cpu_ce:>10.3f}")
    print(f"{'loss fwd+bwd, vectorised':<42}{t_vec:>10.3f}")
    print(f"{'loss fwd+bwd, loop reference':<42}{t_ref:>10.3f}")
    print(f"{'  speed-up (target ≥ 5)':<42}{t_ref / t_vec:>10.1f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 2 instead of 8")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    args = parser.parse_args()
    run(args.quick, args.threads)


if __name__ == "__main__":
    main()
