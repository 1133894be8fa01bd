"""Inference speed of the shipped networks, as a share of the machine's derived limit (benchmarks/limits.py).

For each distinct network among `checkpoints/*/model_card.json` (networks that differ only in their weights
or number of classes are timed once: speed does not depend on the weights; with no checkpoint, the default
light SCRNet with random weights) and each size (360×480 CamVid, 1024×2048 Cityscapes), the execution variants below run
*interleaved* (one call of each in turn, so load from other processes hits all alike) and give median / best
latency, images/s, and

    share = achieved FLOP/s / limit,   achieved = 2 FLOPs × MACs / best latency,

MACs from `contextrast.models.cost.count_cost` (conv + matmul multiply-adds, METHOD.md §1 "Cost"). fp32
variants are divided by the fp32 limit; bf16 variants by the bf16 limit where the CPU has bf16 units, and by
the fp32 limit where bf16 is emulated (it then runs on the fp32 units). Beside them, at every size, the
measured rates of the network's own 3×3 convolutions run one by one: the most this network's arithmetic
gets from the convolution library. Every variant's argmax is compared with fp32 eager (agreement).

Variants (registry `VARIANTS`): `eager` (fp32, `no_grad`), `inference_mode`, `channels_last`, `bf16`
(autocast), `channels_last_bf16`, `folded_channels_last(_bf16)` (batch norm folded into the convolutions,
`contextrast.models.fusion`), `compile` (`torch.compile` of the channels_last network with static
shapes; first-call time reported apart), `compile_frozen(_bf16)` (the same with Inductor's freezing: weights as
constants, batch norm folded, weights pre-packed for oneDNN; bf16 only where the CPU has bf16 units); on CUDA
also `amp_fp16`. With dynamic shapes (what
`torch.compile` switches to when a second input size arrives) Inductor fails to lower
`adaptive_avg_pool2d` to a symbolic output size — reproduction in docs/performance.md — so each size
compiles on its own.

    python -m benchmarks --only inference [--quick]
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.limits import conv_rate, conv_shapes, flops_per_s, share
from benchmarks.profile_ops import top_ops
from contextrast import allocator
from contextrast.engine.inference import class_indices, logits_of
from contextrast.models import build_model
from contextrast.models.cost import count_cost
from contextrast.models.fusion import fold_batch_norms
from contextrast.registry import Registry

SIZES: tuple[tuple[int, int], ...] = ((360, 480), (1024, 2048))
LARGE = (1024, 2048)
BASELINE = "eager"
TARGETS = {"fp32": 0.6, "bf16": 0.5}  # shares of the derived limits at 1024×2048
AGREEMENT_FLOOR = 0.99  # a variant whose argmax differs from fp32 eager on more pixels does not "win"
ROOT = Path(__file__).resolve().parents[1]
# the parts of a model config that change its arithmetic at inference (the projection heads do not run; the
# number of classes changes only the last 1×1 classifier, a fraction of a per cent of the MACs)
ARCHITECTURE_KEYS = ("backbone", "in_channels", "align", "context", "decoder_channels")


@dataclass
class Variant:
    """A ready-to-time way of running a model: `forward(x)`, the input prepared for it, its arithmetic."""

    forward: Callable[[Tensor], Tensor]
    prepare: Callable[[Tensor], Tensor]
    dtype: str = "fp32"  # which limit the variant is judged against


VARIANTS: Registry[Callable[[nn.Module], Variant]] = Registry("inference variant")


class _FloatLogits(nn.Module):
    """`model`'s logits as fp32 (under autocast to `dtype` when given): what every variant returns, as one module,
    so that a compiled graph writes the fp32 output itself instead of a separate conversion after it (a bf16 →
    fp32 copy of the 11-channel channels_last logits: 90 ms a call at 1024×2048)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype
        self.device_type = next(model.parameters()).device.type

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
            return logits_of(self.model(x)).float()


def _runner(model: nn.Module, grad_mode: Callable[[], AbstractContextManager], autocast_dtype: torch.dtype | None):
    """`model`'s fp32 logits (`_FloatLogits`) under `grad_mode`."""
    logits = _FloatLogits(model, autocast_dtype)

    def forward(x: Tensor) -> Tensor:
        with grad_mode():
            return logits(x)

    return forward


def _identity(x: Tensor) -> Tensor:
    return x


def _channels_last(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _cl_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).to(memory_format=torch.channels_last)


VARIANTS.register("eager")(lambda m: Variant(_runner(m, torch.no_grad, None), _identity))
VARIANTS.register("inference_mode")(lambda m: Variant(_runner(m, torch.inference_mode, None), _identity))
VARIANTS.register("channels_last")(lambda m: Variant(_runner(_cl_model(m), torch.inference_mode, None), _channels_last))
VARIANTS.register("bf16")(lambda m: Variant(_runner(m, torch.inference_mode, torch.bfloat16), _identity, "bf16"))
VARIANTS.register("channels_last_bf16")(
    lambda m: Variant(_runner(_cl_model(m), torch.inference_mode, torch.bfloat16), _channels_last, "bf16"))


def _folded_cl_model(model: nn.Module) -> nn.Module:
    folded = copy.deepcopy(model).eval()
    fold_batch_norms(folded)
    return folded.to(memory_format=torch.channels_last)


# batch norm folded into the convolutions (contextrast.models.fusion): a candidate, not yet a default
VARIANTS.register("folded_channels_last")(
    lambda m: Variant(_runner(_folded_cl_model(m), torch.inference_mode, None), _channels_last))
VARIANTS.register("folded_channels_last_bf16")(
    lambda m: Variant(_runner(_folded_cl_model(m), torch.inference_mode, torch.bfloat16), _channels_last, "bf16"))


@VARIANTS.register("amp_fp16")
def _amp_fp16(model: nn.Module) -> Variant:
    if next(model.parameters()).device.type != "cuda":
        raise ValueError("variant amp_fp16 needs a CUDA model")
    return Variant(_runner(model, torch.inference_mode, torch.float16), _identity, "bf16")


@VARIANTS.register("compile")
def _compile(model: nn.Module) -> Variant:
    # static shapes: with dynamic=True Inductor cannot lower adaptive_avg_pool2d (see the module docstring)
    compiled = torch.compile(_cl_model(model), dynamic=False)
    return Variant(_runner(compiled, torch.inference_mode, None), _channels_last)


# Inductor "freezing": the weights become constants of the compiled graph, so it folds batch norm into the
# convolutions and pre-packs the weights in oneDNN's blocked layouts once, instead of at every call. Set in
# Inductor's config while the first call compiles: passed as torch.compile(options={"freezing": True}) instead, the
# same network ran 1.4× slower in bf16 at 1024×2048 (0.66 s against 0.47 s, torch 2.13 on this CPU).
def _frozen(model: nn.Module, autocast_dtype: torch.dtype | None) -> Callable[[Tensor], Tensor]:
    import torch._inductor.config as inductor_config

    compiled = torch.compile(_FloatLogits(_cl_model(model), autocast_dtype), dynamic=False)

    def forward(x: Tensor) -> Tensor:
        with inductor_config.patch(freezing=True), torch.no_grad():
            return compiled(x)

    return forward


VARIANTS.register("compile_frozen")(lambda m: Variant(_frozen(m, None), _channels_last))
VARIANTS.register("compile_frozen_bf16")(lambda m: Variant(_frozen(m, torch.bfloat16), _channels_last, "bf16"))


def variants_for(device: torch.device, quick: bool, size: tuple[int, int], bf16_in_hardware: bool) -> list[str]:
    """The variants worth timing. Compile is minutes of compilation on a CPU: full mode only. Emulated bf16
    (no bf16 units) runs at a few GFLOP/s, tens of seconds a call at the large size: there only the candidate
    default `channels_last_bf16` is timed, in full mode."""
    names = ["eager", "inference_mode", "channels_last", "folded_channels_last"]
    if bf16_in_hardware or device.type == "cuda" or size != LARGE:
        names += ["bf16", "channels_last_bf16", "folded_channels_last_bf16"]
    elif not quick:
        names.append("channels_last_bf16")
    if device.type == "cuda":
        names.append("amp_fp16")
    if not quick:
        names += ["compile", "compile_frozen"]
        if bf16_in_hardware or device.type == "cuda":
            names.append("compile_frozen_bf16")
    return names


# ---------------------------------------------------------------------------------------------- models


@dataclass
class Subject:
    """A network to time, what it is called in the results, and its config (for the MAC count)."""

    name: str
    model: nn.Module
    config: dict[str, Any]


def shipped_checkpoints(directory: str | Path = ROOT / "checkpoints") -> list[Path]:
    """Every sub-directory of `directory` holding a model_card.json, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if (p / "model_card.json").is_file())


def subjects(directory: str | Path = ROOT / "checkpoints", model_config: dict[str, Any] | None = None) -> list[Subject]:
    """One subject per distinct network among the shipped checkpoints (named after all that share it), or the
    default light SCRNet with random weights when none is shipped."""
    from contextrast.engine.checkpoint import load_checkpoint, read_card

    found = [] if model_config is not None else shipped_checkpoints(directory)
    if not found:
        config = dict(model_config or {})
        torch.manual_seed(0)
        label = "light SCRNet" + (" (tiny config)" if config else "") + ", random weights (no shipped checkpoint)"
        return [Subject(label, build_model(config).eval(), config)]
    groups: dict[tuple[Any, ...], list[Path]] = {}
    for path in found:
        card = read_card(path)
        groups.setdefault(tuple(card.model.get(k) for k in ARCHITECTURE_KEYS), []).append(path)
    out = []
    for paths in groups.values():
        model, card = load_checkpoint(paths[0])
        name = paths[0].name + (f" (same network up to the classifier: {', '.join(p.name for p in paths[1:])})"
                                if paths[1:] else "")
        out.append(Subject(name, model.eval(), dict(card.model)))
    return out


def gmacs(config: dict[str, Any], size: tuple[int, int]) -> float:
    """Inference GMACs of `build_model(config)` at `size`, counted on the meta device (no arithmetic runs)."""
    with torch.device("meta"):
        return count_cost(build_model(config), size).gmacs


# ---------------------------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_variants(
    model: nn.Module, names: Sequence[str], size: tuple[int, int], repeats: int, batch: int = 1,
    fewer: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Interleaved timings of `names` on one random (batch, 3, *size) input: per variant the median and best
    wall seconds per call, the median CPU seconds (all threads), the first call's seconds, and the argmax
    agreement with the first variant's output. `fewer`: variants timed fewer than `repeats` times."""
    fewer = fewer or {}
    device = next(model.parameters()).device
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
    ready: dict[str, tuple[Variant, Tensor]] = {}
    results: dict[str, dict[str, Any]] = {}
    reference: Tensor | None = None
    for name in names:
        variant = VARIANTS.get(name)(model)
        xin = variant.prepare(x)
        try:
            t0 = time.perf_counter()
            out = variant.forward(xin)
            _sync(device)
            first = time.perf_counter() - t0
        except Exception as e:  # a variant this build cannot run (no compiler, no bf16 kernels …): say why
            results[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
            continue
        labels = class_indices(out)
        reference = labels if reference is None else reference
        results[name] = {"first_call_s": first, "agreement": float((labels == reference).float().mean()),
                         "dtype": variant.dtype, "times": [], "cpu_times": []}
        ready[name] = (variant, xin)
    for round_ in range(repeats):
        for name, (variant, xin) in ready.items():
            if round_ >= fewer.get(name, repeats):
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            variant.forward(xin)
            _sync(device)
            results[name]["times"].append(time.perf_counter() - t0)
            results[name]["cpu_times"].append(time.process_time() - c0)
    for name in ready:
        times = results[name].pop("times")
        cpu_times = results[name].pop("cpu_times")
        results[name].update(
            median_s=statistics.median(times), best_s=min(times), repeats=len(times),
            # CPU seconds of this process (all threads): on shared cores, wall time includes waiting for them
            median_cpu_s=statistics.median(cpu_times),
            images_per_s=batch / statistics.median(times),
        )
    return results


def winner(timings: dict[str, dict[str, Any]], baseline: str = BASELINE) -> str:
    """The fastest (median) variant whose predictions agree with fp32 eager on ≥ `AGREEMENT_FLOOR` of pixels."""
    ok = {n: r for n, r in timings.items() if "median_s" in r and r["agreement"] >= AGREEMENT_FLOOR}
    return min(ok, key=lambda n: ok[n]["median_s"]) if ok else baseline


def judge(timings: dict[str, dict[str, Any]], macs_g: float, limits: dict[str, float | None],
          baseline: str) -> None:
    """Add achieved GFLOP/s, the share of the limit each variant is judged against, and the speed-up."""
    base = timings.get(baseline, {}).get("median_s")
    for r in timings.values():
        if "best_s" not in r:
            continue
        r["achieved_gflops"] = flops_per_s(macs_g * 1e9, r["best_s"])
        r["limit"] = "bf16" if r["dtype"] == "bf16" and limits.get("bf16") else "fp32"
        r["limit_gflops"] = limits.get(r["limit"])
        r["share_of_limit"] = share(r["achieved_gflops"], r["limit_gflops"])
        r["speedup_vs_baseline"] = base / r["median_s"] if base else None


def conv_probes(model: nn.Module, size: tuple[int, int], limits: dict[str, float | None], quick: bool,
                bf16_in_hardware: bool) -> dict[str, Any]:
    """Rates of the network's 3×3 convolutions alone at `size` (channels_last fp32, and bf16 unless it is
    emulated at the large size in quick mode; inputs and weights already in that dtype), with their shares of
    the limits."""
    device = next(model.parameters()).device
    shapes = conv_shapes(model, size)
    top = 4 if quick else None
    out: dict[str, Any] = {}
    runs = [("fp32", torch.float32)]
    if bf16_in_hardware or device.type == "cuda" or size != LARGE:
        runs.append(("bf16", torch.bfloat16))
    for label, dtype in runs:
        rate = conv_rate(shapes, device, channels_last=True, dtype=dtype, repeats=1 if quick else 2, top=top)
        limit = limits.get("bf16") if label == "bf16" and limits.get("bf16") else limits.get("fp32")
        rate["share_of_limit"] = share(rate["gflops"], limit)
        out[label] = rate
    return out


def run(
    quick: bool = False,
    device: str | torch.device = "cpu",
    sizes: Sequence[tuple[int, int]] = SIZES,
    variants: Sequence[str] | None = None,
    repeats: int | None = None,
    limit: dict[str, Any] | None = None,
    checkpoints_dir: str | Path = ROOT / "checkpoints",
    model_config: dict[str, Any] | None = None,
    profile: bool = True,
    probes: bool = True,
) -> dict[str, Any]:
    """Time every subject × size × variant; see the module docstring. `limit`: the derived limit of this run
    (`benchmarks.limits`: `fp32_gflops`, `bf16_gflops`, `bf16_units`; derived here when None).
    `model_config` replaces the shipped checkpoints by one random-weight model of that config (tests)."""
    from benchmarks.limits import cpu_limit

    device = torch.device(device)
    if limit is None:
        limit = cpu_limit(quick)[0]
    limits = {"fp32": limit.get("fp32_gflops"), "bf16": limit.get("bf16_gflops")}
    in_hardware = device.type == "cuda" or bool(limit.get("bf16_units"))
    for name in variants or ():
        VARIANTS.get(name)  # unknown names fail before minutes of timing
    out: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads(), "limit": limit,
                           "targets": TARGETS, "allocator": allocator.describe(), "models": []}
    for subject in subjects(checkpoints_dir, model_config):
        model = subject.model.to(device)
        per_size = []
        for i, size in enumerate(sizes):
            names = list(variants) if variants is not None else variants_for(device, quick, size, in_hardware)
            n = repeats if repeats is not None else (3 if quick else 7) if i == 0 else (2 if quick else 4)
            # emulated bf16 takes seconds a call (tens at the large size): fewer timed calls
            fewer = {v: 1 if size == LARGE else min(n, 3) for v in names if "bf16" in v} if not in_hardware else {}
            load = _load()
            timings = time_variants(model, names, size, n, fewer=fewer)
            macs = gmacs(subject.config, size)
            judge(timings, macs, limits, names[0])
            entry: dict[str, Any] = {"size": list(size), "gmacs": macs, "variants": timings,
                                     "winner": winner(timings, names[0]), "load_average_1m": load}
            if probes:
                entry["conv3x3"] = conv_probes(model, size, limits, quick, in_hardware)
            per_size.append(entry)
        profiled = None
        if profile:
            size = sizes[0] if quick else sizes[-1]
            variant = VARIANTS.get("channels_last")(model)
            xin = variant.prepare(torch.randn(1, 3, *size).to(device))
            variant.forward(xin)
            profiled = {"size": list(size), "variant": "channels_last",
                        "top_ops": top_ops(lambda v=variant, x=xin: v.forward(x), device=device)}
        out["models"].append({"name": subject.name, "config": subject.config, "sizes": per_size, "profile": profiled})
        model.to("cpu")
    if probes and not quick and device.type == "cpu" and model_config is None and LARGE in sizes:
        out["allocator_effect"] = allocator_effect(checkpoints_dir, LARGE, 3)
    return out


def allocator_effect(checkpoints_dir: str | Path = ROOT / "checkpoints", size: tuple[int, int] = LARGE,
                     repeats: int = 3, variant: str = "channels_last_bf16", timeout_s: float = 600.0
                     ) -> dict[str, Any]:
    """`variant`'s median seconds at `size` in a fresh process per allocator (`contextrast.allocator`): what
    jemalloc keeping freed pages is worth here, beside the same with the system allocator. Allocators this machine
    lacks are reported as such."""
    import json
    import subprocess
    import sys

    code = ("from contextrast.allocator import restart_with_jemalloc; restart_with_jemalloc()\n"
            "import json, sys; from benchmarks.inference import _median_seconds\n"
            "print(json.dumps(_median_seconds(*json.loads(sys.argv[1]))))")
    args = json.dumps([str(checkpoints_dir), list(size), repeats, variant])
    out: dict[str, Any] = {"variant": variant, "size": list(size), "repeats": repeats}
    for choice in allocator.CHOICES:
        if choice == "jemalloc" and allocator.jemalloc_library() is None:
            out[choice] = {"error": "no jemalloc on the library path"}
            continue
        env = {**os.environ, allocator.ENV: choice}
        if choice == "system":  # a user's own jemalloc preload would not make it the system's
            env["LD_PRELOAD"] = ":".join(p for p in env.get("LD_PRELOAD", "").split(":") if p and "jemalloc" not in p)
        try:
            done = subprocess.run([sys.executable, "-c", code, args], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=timeout_s)
            if done.returncode != 0:
                out[choice] = {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:200]}
                continue
            out[choice] = json.loads(done.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            out[choice] = {"error": f"no figure within {timeout_s:.0f} s"}
        except (ValueError, IndexError) as e:
            out[choice] = {"error": f"unreadable child output: {e}"}
    return out


def _median_seconds(checkpoints_dir: str, size: Sequence[int], repeats: int, variant: str) -> dict[str, Any]:
    """In a child process of `allocator_effect`: the first subject's `variant` timed `repeats` times."""
    timings = time_variants(subjects(checkpoints_dir)[0].model, [variant], (int(size[0]), int(size[1])), repeats)
    return {"median_s": timings[variant].get("median_s"), "error": timings[variant].get("error"),
            "allocator": allocator.current()}


def _load() -> float | None:
    from benchmarks.machine import load_average

    load = load_average()
    return load[0] if load else None
