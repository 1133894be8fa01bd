"""Training throughput of the trainer itself (`contextrast.engine.trainer.train`, data loading included), as
configured in configs/camvid_cpu.yaml, against the same recipe with channels_last, channels_last + bf16 autocast
(on CPUs with bf16 units) and `torch.compile`.

Each variant is one fresh process (`python -m benchmarks.trainer_speed --variant NAME`: its own compile cache
and memory, and a crash or an Inductor failure becomes a note instead of ending the run) that trains
`warmup + timed` iterations at batch `BATCH` on the shipped CamVid model's data (toy pictures when that is
absent) and is then cancelled: no validation, no checkpoint. images/s = timed × batch / seconds of the timed
iterations (from the trainer's per-iteration log); the warm-up iterations carry the one-off costs (worker
start, oneDNN kernel selection, compilation), reported as `first_iteration_s`; each process gets an empty
Inductor cache, so that figure is a cold compilation, not kernels an earlier run left on disk. Every variant sees the same
crops in the same order (same seed), so its loss per iteration beside the configured run's shows what the
arithmetic changes (`max_loss_difference`). Variants run one after another, not interleaved: the load average
of each is recorded with it.

    python -m benchmarks --only training              # with the other training figures
    python -m benchmarks.trainer_speed --variant channels_last   # one variant, JSON on stdout
"""

from __future__ import annotations

from contextrast.allocator import restart_with_jemalloc

if __name__ == "__main__":  # a child run of its own: the allocator the `contextrast train` command gets
    restart_with_jemalloc()

import argparse  # noqa: E402 - after the restart, on purpose
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "camvid_cpu.yaml"
BATCH = 2
VARIANTS: dict[str, list[str]] = {
    "as configured (eager fp32)": [],
    "channels_last": ["train.channels_last=true"],
    "channels_last + bf16 autocast": ["train.channels_last=true", "train.cpu_bf16=true"],
    "torch.compile (channels_last)": ["train.channels_last=true", "train.compile=true"],
}
BASELINE = "as configured (eager fp32)"


TOY = ["train.data=toy:n=16,size=360x480", "train.train_split=train", "train.val_split=val"]


def data_overrides() -> tuple[list[str], str]:
    """(config overrides, what the data is): the shipped CamVid model's data where present, else toy pictures."""
    from benchmarks.evaluation import camvid_subject

    found = camvid_subject()
    if isinstance(found, str):
        return TOY, f"toy pictures ({found})"
    return [f"train.data={found[1]}"], "CamVid (the shipped model's data)"


def measure(variant: str, warmup: int, timed: int, batch: int = BATCH, config: str | Path = CONFIG,
            extra: list[str] | None = None) -> dict[str, Any]:
    """Train `warmup + timed` iterations of `config` with the variant's overrides in this process."""
    from contextrast.config import load_config
    from contextrast.engine.trainer import TrainHooks, train

    total = warmup + timed
    with tempfile.TemporaryDirectory(prefix="bench-train-") as run_dir:
        overrides = [f"train.batch_size={batch}", f"train.run_dir={run_dir}", "train.log_interval=1",
                     "train.val_interval=1000000", "train.ckpt_interval=1000000",
                     *(extra or []), *VARIANTS[variant]]
        cfg = load_config(config, overrides)
        stamps: list[tuple[float, float]] = []
        t0 = time.perf_counter()
        hooks = TrainHooks(on_log=lambda r: stamps.append((time.perf_counter(), float(r.get("total", "nan")))),
                           should_stop=lambda: "cancel" if len(stamps) >= total else None, progress_bar=False)
        train(cfg, hooks)
    if len(stamps) < total:
        raise RuntimeError(f"the trainer stopped after {len(stamps)} of {total} iterations")
    seconds = stamps[-1][0] - stamps[warmup - 1][0]
    return {"variant": variant, "overrides": VARIANTS[variant], "batch": batch, "crop": list(cfg.train.crop),
            "warmup": warmup, "timed": timed, "timed_s": seconds, "images_per_s": timed * batch / seconds,
            "first_iteration_s": stamps[0][0] - t0, "losses": [loss for _, loss in stamps],
            "workers": cfg.train.workers, "loss": cfg.loss.name}


def _in_process(variant: str, warmup: int, timed: int, extra: list[str], timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.trainer_speed", "--variant", variant, "--warmup", str(warmup),
               "--timed", str(timed), *(f"--set={o}" for o in extra)]
    cache = tempfile.mkdtemp(prefix="bench-inductor-")  # a cold compile: no kernels of an earlier run
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"not finished within {timeout_s:.0f} s"}
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if done.returncode != 0:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
        return {"error": f"exited with {done.returncode}: {' | '.join(tail)[-300:]}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


def run(quick: bool = False, warmup: int = 3, timed: int = 5, variants: list[str] | None = None,
        extra: list[str] | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """Every variant in its own process; ratios of images/s to the configured trainer. Quick mode leaves out
    torch.compile (minutes of compilation on a CPU). `extra`: config overrides (data, crop …) replacing the
    shipped CamVid model's data."""
    from benchmarks.machine import load_average
    from contextrast.engine.precision import cpu_bf16_units

    names = variants or [v for v in VARIANTS if not (quick and "compile" in v)]
    if not cpu_bf16_units():
        names = [n for n in names if "bf16" not in n]  # emulated bf16 trains slower than fp32: not a candidate
    overrides, what = (extra, " ".join(extra)) if extra else data_overrides()
    out: dict[str, Any] = {"config": str(CONFIG.relative_to(ROOT)), "data": what, "batch": BATCH, "warmup": warmup,
                           "timed": timed, "baseline": BASELINE, "variants": {}}
    for name in names:
        load = load_average()
        r = _in_process(name, warmup, timed, overrides, timeout_s or (900 if "compile" in name else 300))
        r["load_average_1m"] = load[0] if load else None
        out["variants"][name] = r
    base = out["variants"].get(BASELINE, {})
    for r in out["variants"].values():
        if "images_per_s" in r and "images_per_s" in base:
            r["ratio_to_configured"] = r["images_per_s"] / base["images_per_s"]
            pairs = list(zip(r["losses"], base["losses"]))
            r["max_loss_difference"] = max(abs(a - b) / max(abs(b), 1e-12) for a, b in pairs) if pairs else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=list(VARIANTS), default=BASELINE)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timed", type=int, default=5)
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides (default: the shipped CamVid model's data)")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.timed < 1:
        parser.error("--warmup and --timed must be at least 1")
    extra = args.extra or data_overrides()[0]
    print(json.dumps(measure(args.variant, args.warmup, args.timed, extra=extra)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
