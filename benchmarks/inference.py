"""Inference speed of each shipped checkpoint, and how close it comes to the machine's matmul limit (issue 9 §1).

For every directory of `checkpoints/` holding a `model_card.json` (or, when there is none, the default light
SCRNet with random weights, labelled as such; speed does not depend on the weights) and each image size
(360×480 CamVid, 1024×2048 Cityscapes), the execution variants below run *interleaved* (one call of each in
turn, so load from other processes hits all alike) and give median / best latency, images/s, and

    efficiency = (2 · GMACs · 1e9 / best latency) / measured fp32 matmul peak,

the share of the physical limit the network reaches (GMACs from `contextrast.models.cost.count_cost`: conv +
matmul multiply-adds, METHOD.md §1 "Cost"). Every variant's output is compared with fp32 eager (argmax
agreement), so a faster variant that changes predictions shows it.

Variants (registry `VARIANTS`): `eager` (fp32, `no_grad`), `inference_mode`, `channels_last`, `bf16`
(autocast), `channels_last_bf16`, `compile` (`torch.compile`, first-call time reported apart); on CUDA also
`amp_fp16`. Quick mode times every CPU variant except `compile` at the small size, and at the large size
the baseline and the small size's winner only.

    python -m benchmarks --only inference [--quick]
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.profile_ops import top_ops
from contextrast.models import build_model
from contextrast.models.cost import count_cost
from contextrast.registry import Registry

SIZES: tuple[tuple[int, int], ...] = ((360, 480), (1024, 2048))
BASELINE = "eager"
EFFICIENCY_TARGET = 0.5  # at 1024×2048 (issue 9)
AGREEMENT_FLOOR = 0.99  # a variant whose argmax differs from fp32 eager on more pixels does not "win"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Variant:
    """A ready-to-time way of running a model: `forward(x)` and the input prepared for it."""

    forward: Callable[[Tensor], Tensor]
    prepare: Callable[[Tensor], Tensor]
    warmup_s: float = 0.0  # time of the first call (compilation) when it differs from later calls


VARIANTS: Registry[Variant] = Registry("inference variant")


def _logits(out: Any) -> Tensor:
    return out if isinstance(out, Tensor) else out.logits


def _runner(model: nn.Module, grad_mode: Callable[[], AbstractContextManager], autocast_dtype: torch.dtype | None):
    device_type = next(model.parameters()).device.type

    def forward(x: Tensor) -> Tensor:
        cast = torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
        with grad_mode(), cast:
            return _logits(model(x)).float()

    return forward


def _identity(x: Tensor) -> Tensor:
    return x


def _channels_last(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last)


@VARIANTS.register("eager")
def _eager(model: nn.Module) -> Variant:
    return Variant(_runner(model, torch.no_grad, None), _identity)


@VARIANTS.register("inference_mode")
def _inference_mode(model: nn.Module) -> Variant:
    return Variant(_runner(model, torch.inference_mode, None), _identity)


@VARIANTS.register("channels_last")
def _channels_last_variant(model: nn.Module) -> Variant:
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return Variant(_runner(model, torch.inference_mode, None), _channels_last)


@VARIANTS.register("bf16")
def _bf16(model: nn.Module) -> Variant:
    return Variant(_runner(model, torch.inference_mode, torch.bfloat16), _identity)


@VARIANTS.register("channels_last_bf16")
def _channels_last_bf16(model: nn.Module) -> Variant:
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return Variant(_runner(model, torch.inference_mode, torch.bfloat16), _channels_last)


@VARIANTS.register("amp_fp16")
def _amp_fp16(model: nn.Module) -> Variant:
    if next(model.parameters()).device.type != "cuda":
        raise ValueError("variant amp_fp16 needs a CUDA model")
    return Variant(_runner(model, torch.inference_mode, torch.float16), _identity)


@VARIANTS.register("compile")
def _compile(model: nn.Module) -> Variant:
    compiled = torch.compile(copy.deepcopy(model))
    return Variant(_runner(compiled, torch.inference_mode, None), _identity)


def variants_for(device: torch.device, quick: bool) -> list[str]:
    """The variants worth timing on `device` (compile is minutes of compilation on a CPU: full mode only)."""
    names = ["eager", "inference_mode", "channels_last", "bf16", "channels_last_bf16"]
    if device.type == "cuda":
        names.append("amp_fp16")
    if not quick:
        names.append("compile")
    return names


# ---------------------------------------------------------------------------------------------- models


@dataclass
class Subject:
    """A model to time, what it is called in the results, and its config (for the MAC count)."""

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
    """The shipped checkpoints, or the default light SCRNet with random weights when none is shipped."""
    from contextrast.engine.checkpoint import load_checkpoint

    found = [] if model_config is not None else shipped_checkpoints(directory)
    if not found:
        config = dict(model_config or {})
        torch.manual_seed(0)
        label = "light SCRNet" + (" (tiny config)" if config else "") + ", random weights (no shipped checkpoint)"
        return [Subject(label,
                        build_model(config).eval(), config)]
    out = []
    for path in found:
        model, card = load_checkpoint(path)
        out.append(Subject(path.name, model.eval(), dict(card.model)))
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
    model: nn.Module, names: Sequence[str], size: tuple[int, int], repeats: int, batch: int = 1
) -> dict[str, dict[str, Any]]:
    """Interleaved timings of `names` on one random (batch, 3, *size) input: per variant the median and best
    wall seconds per call, the median CPU seconds (all threads), the first call's seconds, and the argmax
    agreement with the first variant's output."""
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
        labels = out.argmax(1)
        reference = labels if reference is None else reference
        results[name] = {"first_call_s": first, "agreement": float((labels == reference).float().mean()),
                         "times": [], "cpu_times": []}
        ready[name] = (variant, xin)
    for _ in range(repeats):
        for name, (variant, xin) in ready.items():
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


def run(
    quick: bool = False,
    device: str | torch.device = "cpu",
    sizes: Sequence[tuple[int, int]] = SIZES,
    variants: Sequence[str] | None = None,
    repeats: int | None = None,
    peak_gflops: float | None = None,
    checkpoints_dir: str | Path = ROOT / "checkpoints",
    model_config: dict[str, Any] | None = None,
    profile: bool = True,
) -> dict[str, Any]:
    """Time every subject × size × variant; see the module docstring. `model_config` replaces the shipped
    checkpoints by one random-weight model of that config (tests use a tiny one). `peak_gflops`: the fp32
    matmul peak measured earlier in the same run (measured here when None)."""
    from benchmarks.machine import matmul_peak_gflops

    device = torch.device(device)
    if peak_gflops is None:
        peak_gflops = matmul_peak_gflops(device)
    names = list(variants) if variants is not None else variants_for(device, quick)
    for name in names:
        VARIANTS.get(name)  # unknown names fail before minutes of timing
    out: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads(),
                           "peak_fp32_gflops": peak_gflops, "efficiency_target": EFFICIENCY_TARGET, "models": []}
    for subject in subjects(checkpoints_dir, model_config):
        model = subject.model.to(device)
        per_size = []
        chosen = names
        for i, size in enumerate(sizes):
            n = repeats if repeats is not None else (3 if quick else 7) if i == 0 else (2 if quick else 5)
            if quick and i > 0 and per_size:  # large size in quick mode: baseline and the small size's winner
                chosen = list(dict.fromkeys([names[0], per_size[0]["winner"]]))
            timings = time_variants(model, chosen, size, n)
            macs = gmacs(subject.config, size)
            for r in timings.values():
                if "best_s" in r:
                    r["achieved_gflops"] = 2 * macs / r["best_s"]
                    r["efficiency"] = r["achieved_gflops"] / peak_gflops
                    r["speedup_vs_baseline"] = (
                        timings[chosen[0]]["median_s"] / r["median_s"] if "median_s" in timings[chosen[0]] else None
                    )
            entry: dict[str, Any] = {"size": list(size), "gmacs": macs, "variants": timings,
                                     "winner": winner(timings, chosen[0])}
            per_size.append(entry)
        if profile:
            size = sizes[0] if quick else sizes[-1]
            variant = VARIANTS.get(names[0])(model)
            xin = variant.prepare(torch.randn(1, 3, *size).to(device))
            variant.forward(xin)
            per_size_profile = {"size": list(size), "variant": names[0],
                                "top_ops": top_ops(lambda v=variant, x=xin: v.forward(x), device=device)}
        else:
            per_size_profile = None
        out["models"].append({"name": subject.name, "config": subject.config, "sizes": per_size,
                              "profile": per_size_profile})
        model.to("cpu")
    return out
