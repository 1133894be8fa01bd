"""The physical limit a figure is judged against: this CPU's fp32 and bf16 peaks, derived from what the CPU
says it is, and the measured rates of a large matmul and of the model's own 3×3 convolutions beside them.

    fp32 peak = cores × FMA units × fp32 lanes per unit × 2 (an FMA is 2 FLOPs) × clock

- cores: the physical cores this process may run on (/proc/cpuinfo `physical id` / `core id` pairs of the
  CPUs in its affinity mask), at most torch's thread count (two SMT threads of one core share its FMA units);
- FMA units × lanes: from the vector extensions in /proc/cpuinfo `flags` (avx512f → 16 fp32 lanes, avx2+fma
  → 8) and a short table of core designs (`fma_design`); a CPU outside it is assumed to have 2 units, the
  most any x86 core has, so the limit errs high and a share stays a share;
- clock: the maximum from cpufreq (`cpuinfo_max_freq`) where the kernel publishes it; else the higher of the
  base clock (cpufreq `base_frequency`, or BogoMIPS / 2: x86 BogoMIPS counts two per TSC cycle, and the TSC
  ticks at the base clock) and the clock `measured_clock_ghz` reads off a dependent add chain. A virtual
  machine usually publishes no cpufreq, and its cores may run above base (turbo): a limit at base clock
  would be beaten by a plain matmul. The clock of a shared host drifts (4.32 GHz one minute, 3.90 the next were
  read on one VM): where the FMA loop below ran faster than the chosen clock allows, its rate sets the clock.
- the FMA loop (`fma_peak`, benchmarks/fma_peak.c compiled with the system C compiler): every core running
  nothing but independent FMAs at the widest vector width. It checks the derivation: its share of the limit is
  ~1 where the design table is right, about 0.5 where a core splits its vectors in two halves; a clock it implies
  far above the one read off the add chain says the table undercounts units or lanes.
- bf16: where the CPU has bf16 dot-product units, AVX512_BF16 (`vdpbf16ps`: two bf16 products per fp32
  lane → 2 × the fp32 peak) or AMX (`amx_bf16`: 1024 bf16 FLOPs per cycle per core, Intel's figure for the
  tile unit). Without them bf16 is emulated (converted to fp32 and computed on the fp32 units) and its
  limit is the fp32 one.

GPU peaks come from the spec sheet (`GPU_SPECS`, dense, no sparsity) when the device's name is in it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from contextrast.engine.precision import cpu_bf16_units

CPUINFO = Path("/proc/cpuinfo")
CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")
FMA_SOURCE = Path(__file__).with_name("fma_peak.c")
FMA_CLOCK_SUSPECT = 1.25  # a clock implied by the FMA loop this far above the add chain's: the table undercounts
AMX_BF16_FLOP_PER_CYCLE = 1024  # per core (Intel AMX TMUL, bf16)
EMULATED_BF16_MATMUL = 512  # matmul size for bf16 on a CPU without bf16 units


@dataclass(frozen=True)
class FmaDesign:
    """fp32 FMA units per core and lanes per unit of a family of core designs."""

    name: str
    units: int
    lanes: int


def fma_design(vendor: str, family: int | None, model: int | None, flags: frozenset[str]) -> tuple[FmaDesign, bool]:
    """(design, known): `known` is False when the entry is the assumption for a CPU outside the table."""
    if vendor == "AuthenticAMD" and family is not None:
        if family == 23:  # Zen / Zen+ (2 × 128-bit FMA pipes), Zen 2 from model 0x30 (2 × 256-bit)
            return (FmaDesign("Zen 2 (2 × 256-bit FMA)", 2, 8) if (model or 0) >= 0x30
                    else FmaDesign("Zen / Zen+ (2 × 128-bit FMA)", 2, 4)), True
        if family == 25:  # Zen 3 and Zen 4: 2 × 256-bit FMA pipes; Zen 4 runs AVX-512 on them in two halves
            return FmaDesign("Zen 3 / Zen 4 (2 × 256-bit FMA)", 2, 8), True
        if family == 26:
            return FmaDesign("Zen 5 (2 × 512-bit FMA)", 2, 16), True
    if vendor == "GenuineIntel" and {"avx512f", "amx_tile"} <= flags:  # Sapphire Rapids and later Xeons
        return FmaDesign("Intel Xeon with AMX (2 × 512-bit FMA)", 2, 16), True
    if vendor == "GenuineIntel" and "avx512f" in flags:
        return FmaDesign("Intel AVX-512 core (assumed 2 × 512-bit FMA; some Xeons have 1)", 2, 16), False
    if vendor == "GenuineIntel" and {"avx2", "fma"} <= flags:
        return FmaDesign("Intel AVX2 core (2 × 256-bit FMA)", 2, 8), True
    if "avx512f" in flags:
        return FmaDesign("unknown AVX-512 core (assumed 2 × 512-bit FMA)", 2, 16), False
    if {"avx2", "fma"} <= flags:
        return FmaDesign("unknown AVX2 core (assumed 2 × 256-bit FMA)", 2, 8), False
    return FmaDesign("no FMA extension found (assumed 2 × 128-bit)", 2, 4), False


@dataclass
class CpuInfo:
    """What /proc/cpuinfo and cpufreq say about the CPUs this process runs on."""

    vendor: str = ""
    model_name: str = ""
    family: int | None = None
    model: int | None = None
    flags: frozenset[str] = frozenset()
    logical_cpus: int = 1
    physical_cores: int = 1
    bogomips: float | None = None
    max_clock_ghz: float | None = None
    base_clock_ghz: float | None = None


def _cpufreq_ghz(name: str) -> float | None:
    try:
        return int((CPUFREQ / name).read_text().strip()) / 1e6  # kHz
    except (OSError, ValueError):
        return None


def read_cpuinfo(text: str | None = None, affinity: set[int] | None = None) -> CpuInfo:
    """Parse /proc/cpuinfo (or `text`) for the CPUs in `affinity` (default: this process's mask)."""
    if text is None:
        try:
            text = CPUINFO.read_text()
        except OSError:
            text = ""
    if affinity is None:
        affinity = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    info = CpuInfo(logical_cpus=len(affinity) or 1)
    cores: set[tuple[str, str]] = set()
    for block in blocks:
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}
        if "processor" in fields and fields["processor"].isdigit() and int(fields["processor"]) not in affinity:
            continue
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
        if not info.vendor:
            info.vendor = fields.get("vendor_id", "")
            info.model_name = fields.get("model name", "")
            info.family = int(fields["cpu family"]) if fields.get("cpu family", "").isdigit() else None
            info.model = int(fields["model"]) if fields.get("model", "").isdigit() else None
            info.flags = frozenset(fields.get("flags", "").split())
            try:
                info.bogomips = float(fields["bogomips"])
            except (KeyError, ValueError):
                info.bogomips = None
    info.physical_cores = len(cores) or info.logical_cpus
    info.max_clock_ghz = _cpufreq_ghz("cpuinfo_max_freq")
    info.base_clock_ghz = _cpufreq_ghz("base_frequency")
    return info


# ---------------------------------------------------------------------------------------------- clock


def measured_clock_ghz(repeats: int = 200, steps: int = 400_000) -> float | None:
    """The clock one core runs at now, from a chain of dependent integer steps `x += x >> k`: a shift and an
    add, one cycle each on every x86 core of the last twenty years, so one step = 2 cycles. Best of
    `repeats` short chains (about 0.5 ms each): on a loaded machine a long chain is shared with other
    processes and reads a clock below the real one (20M steps read 2.8–3.5 GHz where 0.4M steps read 4.2 GHz),
    which made a plain matmul beat the limit; a short one fits between two of the scheduler's switches.
    None without numba (a dependency of umap-learn)."""
    try:
        from numba import njit
    except ImportError:
        return None

    @njit(cache=False)
    def chain(n: int, x: int) -> int:  # pragma: no cover - compiled
        for _ in range(n):
            x = x + (x >> 3)
            x = x + (x >> 5)
        return x

    chain(10, 1)  # compile
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        chain(steps, 12345)
        best = min(best, time.perf_counter() - t0)
    return 4 * steps / best / 1e9  # two steps per iteration, two cycles per step


def limit_clock(info: CpuInfo, measured: float | None, fma_implied: float | None = None) -> tuple[float | None, str]:
    """(clock in GHz, which one and why) for the limit. `fma_implied`: the clock at which the FMA loop's rate is
    exactly the design's FLOP per cycle; it replaces a lower clock (the cores ran faster than that one says)."""
    clock, source = _read_clock(info, measured)
    if fma_implied is None or (clock is not None and fma_implied <= clock):
        return clock, source
    note = (f"the FMA loop's rate / (cores × FLOP per cycle): the cores ran faster than the {clock or float('nan'):.3f} "
            f"GHz of the {source.split(' (')[0].split(';')[0]}")
    reference = measured or clock
    if reference and fma_implied > FMA_CLOCK_SUSPECT * reference:
        note += (f"; {fma_implied / reference:.2f} × the clock read off the add chain: the core-design table may "
                 "undercount FMA units or lanes")
    return fma_implied, note


def _read_clock(info: CpuInfo, measured: float | None) -> tuple[float | None, str]:
    if info.max_clock_ghz:
        return info.max_clock_ghz, "maximum clock from cpufreq (cpuinfo_max_freq)"
    base = info.base_clock_ghz or (info.bogomips / 2e3 if info.bogomips else None)
    base_source = "cpufreq base_frequency" if info.base_clock_ghz else "BogoMIPS / 2"
    if base is None and measured is None:
        return None, "no clock known (no cpufreq, no BogoMIPS, no numba)"
    if measured is not None and (base is None or measured > base):
        return measured, (f"measured clock (dependent add chain, one core): no cpufreq maximum is published and the "
                          f"cores ran above the base clock {base or float('nan'):.3f} GHz ({base_source})")
    return base, f"base clock ({base_source}); no cpufreq maximum, the measured clock {measured or float('nan'):.3f} GHz is not above it"


@dataclass
class CpuLimit:
    """The derived peaks of the cores this run uses, and what they were derived from."""

    cores: int
    design: str
    design_known: bool
    fp32_flop_per_cycle_per_core: int
    clock_ghz: float | None
    clock_source: str
    base_clock_ghz: float | None
    max_clock_ghz: float | None
    measured_clock_ghz: float | None
    fp32_gflops: float | None
    bf16_units: str | None
    bf16_gflops: float | None
    bf16_note: str
    vendor: str = ""
    model_name: str = ""
    family: int | None = None
    model: int | None = None
    vector_flags: list[str] = field(default_factory=list)

    def formula(self) -> str:
        if self.fp32_gflops is None:
            return "not derived: no clock known"
        return (f"{self.cores} cores × {self.fp32_flop_per_cycle_per_core} fp32 FLOP/cycle ({self.design}) × "
                f"{self.clock_ghz:.3f} GHz = {self.fp32_gflops:.1f} GFLOP/s")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def derive_cpu_limit(info: CpuInfo | None = None, threads: int | None = None, measured: float | None = None,
                     measure: bool = True, fma_gflops: float | None = None) -> CpuLimit:
    """The fp32 / bf16 peaks of the cores `threads` torch threads can use (see the module docstring).
    `fma_gflops`: the FMA loop's rate on those cores (`fma_peak`), which raises a clock it beats."""
    info = info or read_cpuinfo()
    threads = threads or torch.get_num_threads()
    cores = max(1, min(threads, info.physical_cores))
    design, known = fma_design(info.vendor, info.family, info.model, info.flags)
    per_cycle = 2 * design.units * design.lanes
    if measured is None and measure:
        measured = measured_clock_ghz()
    implied = fma_gflops / (cores * per_cycle) if fma_gflops else None
    clock, source = limit_clock(info, measured, implied)
    fp32 = cores * per_cycle * clock if clock else None
    units = cpu_bf16_units(info.flags)
    if units == "amx_bf16":
        bf16 = cores * AMX_BF16_FLOP_PER_CYCLE * clock if clock else None
        note = f"AMX bf16 tiles: {AMX_BF16_FLOP_PER_CYCLE} FLOP/cycle/core"
    elif units == "avx512_bf16":
        bf16 = 2 * fp32 if fp32 else None
        note = "AVX512_BF16 dot products: 2 × the fp32 peak"
    else:
        bf16 = None
        note = "no bf16 units: bf16 runs emulated (converted, computed on the fp32 units); judged against fp32"
    vector = sorted(f for f in info.flags if f.startswith(("avx", "amx", "fma")))
    return CpuLimit(cores, design.name, known, per_cycle, clock, source, info.base_clock_ghz or (
        info.bogomips / 2e3 if info.bogomips else None), info.max_clock_ghz, measured, fp32, units, bf16, note,
        info.vendor, info.model_name, info.family, info.model, vector)


def fma_peak(threads: int | None = None, rounds: int = 300_000_000, repeats: int = 3,
             info: CpuInfo | None = None) -> dict[str, Any]:
    """The fp32 FMA rate of `threads` OpenMP threads doing nothing but FMAs (benchmarks/fma_peak.c at the widest
    vector width the CPU has, built with $CC or cc/gcc/clang and OpenMP): best of `repeats` runs of `rounds`
    rounds, {'width', 'threads', 'seconds', 'gflops', 'compiler'}; {'not_measured': why} where it cannot be built
    or run (no x86 vector FMA, no C compiler, no OpenMP)."""
    if rounds < 1 or repeats < 1:
        raise ValueError(f"rounds and repeats must be positive; got {rounds}, {repeats}")
    info = info or read_cpuinfo()
    threads = threads or torch.get_num_threads()
    width = 512 if "avx512f" in info.flags else 256 if {"avx2", "fma"} <= info.flags else None
    if width is None:
        return {"not_measured": "no AVX-512 or AVX2 + FMA in the CPU flags (the loop is written for x86 vectors)"}
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    compiler = next((found for found in map(shutil.which, names) if found), None)
    if compiler is None:
        return {"not_measured": f"no C compiler ({' / '.join(names)}) on PATH"}
    with tempfile.TemporaryDirectory(prefix="fma-peak-") as tmp:
        exe = Path(tmp) / "fma_peak"
        try:
            build = subprocess.run([compiler, "-O2", "-march=native", "-fopenmp", f"-DWIDTH={width}",
                                    str(FMA_SOURCE), "-o", str(exe)], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            return {"not_measured": f"{compiler} did not build {FMA_SOURCE.name}: {e}"}
        if build.returncode != 0:
            return {"not_measured": f"{compiler} did not build {FMA_SOURCE.name}: {build.stderr.strip()[-300:]}"}
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        best: dict[str, Any] | None = None
        for _ in range(repeats):
            try:
                run = subprocess.run([str(exe), str(rounds)], capture_output=True, text=True, env=env, timeout=120)
                ran, seconds, gflops = run.stdout.split()[:3]
            except (OSError, subprocess.TimeoutExpired, ValueError) as e:
                return {"not_measured": f"the FMA loop did not run: {e}"}
            if best is None or float(gflops) > best["gflops"]:
                best = {"width": width, "threads": int(ran), "seconds": float(seconds), "gflops": float(gflops)}
    return {**best, "compiler": Path(compiler).name}


def cpu_limit(quick: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the derived limit as a dict with its formula, the FMA loop's result) of the cores torch's threads use."""
    fma = fma_peak(rounds=100_000_000 if quick else 300_000_000)
    limit = derive_cpu_limit(fma_gflops=fma.get("gflops")).to_dict()
    limit["formula"] = CpuLimit(**limit).formula()
    return limit, fma


def share(gflops: float | None, limit_gflops: float | None) -> float | None:
    """Achieved / limit, or None where no limit is derived. A share above 1 means the limit is wrong."""
    if gflops is None or not limit_gflops:
        return None
    return gflops / limit_gflops


def flops_per_s(macs: float, seconds: float) -> float:
    """GFLOP/s of `macs` multiply-adds in `seconds`: 1 MAC = 2 FLOPs (the convention of every peak here)."""
    return 2.0 * macs / seconds / 1e9


# ---------------------------------------------------------------------------------------------- GPU


# dense (no 2:4 sparsity) peaks from the vendors' spec sheets, TFLOP/s: (fp32, bf16 tensor cores)
GPU_SPECS: dict[str, tuple[float, float]] = {
    "H200": (67.0, 989.5),
    "H100 SXM": (67.0, 989.5),
    "H100 PCIe": (51.0, 756.0),
    "H100 NVL": (60.0, 835.0),
    "A100": (19.5, 312.0),
    "L40S": (91.6, 362.05),
    "L4": (30.3, 121.0),
    "A10G": (31.2, 70.0),
    "A10": (31.2, 125.0),
}


def gpu_limit(name: str) -> dict[str, Any]:
    """{'fp32_gflops', 'bf16_gflops', 'source'} from `GPU_SPECS` for a CUDA device name, or a note."""
    normalised = name.replace("-", " ")
    for key in sorted(GPU_SPECS, key=len, reverse=True):
        words = key.split()
        if all(w in normalised for w in words) and (key != "H100 SXM" or "PCIe" not in normalised):
            fp32, bf16 = GPU_SPECS[key]
            return {"fp32_gflops": fp32 * 1e3, "bf16_gflops": bf16 * 1e3, "source": f"spec sheet: {key} (dense)"}
    return {"fp32_gflops": None, "bf16_gflops": None, "source": f"not derived: {name} is not in the spec table"}


# ---------------------------------------------------------------------------------------------- probes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn, repeats: int, device: torch.device) -> float:
    """Fastest of `repeats` calls of `fn` after a warm-up call (the reading least disturbed by other work)."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_rate(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, size: int = 2048,
                repeats: int = 3, as_conv: bool = False) -> dict[str, Any]:
    """Measured rate of one size×size matmul in `dtype`: {'size', 'dtype', 'seconds', 'gflops'} (2·n³ FLOPs).
    `as_conv`: the same product as a 1×1 convolution of a (1, n, n/64, 64) channels_last input with n filters,
    which runs on oneDNN, the library of the model's convolutions (torch.matmul in fp32 runs on the BLAS, MKL)."""
    if size < 1 or repeats < 1:
        raise ValueError(f"size and repeats must be positive; got {size}, {repeats}")
    device = torch.device(device)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    if as_conv:
        if size % 64:
            raise ValueError(f"a matmul as a 1×1 convolution needs a size divisible by 64; got {size}")
        x = a.reshape(1, size, size // 64, 64).contiguous(memory_format=torch.channels_last)
        w = b.reshape(size, size, 1, 1).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            seconds = best_seconds(lambda: F.conv2d(x, w), repeats, device)
    else:
        seconds = best_seconds(lambda: torch.matmul(a, b), repeats, device)
    return {"size": size, "dtype": str(dtype).removeprefix("torch."), "seconds": seconds,
            "gflops": 2.0 * size**3 / seconds / 1e9}


@dataclass(frozen=True)
class ConvShape:
    """One convolution call of a model: input (B, C, H, W), weight (O, C/g, kh, kw), stride, padding, groups."""

    input: tuple[int, ...]
    weight: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    @property
    def macs(self) -> float:
        b, _, h, w = self.input
        o, cg, kh, kw = self.weight
        oh = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        return float(b * o * oh * ow * cg * kh * kw)


def conv_shapes(model: torch.nn.Module, size: tuple[int, int], kernel: int = 3) -> list[ConvShape]:
    """Every `kernel`×`kernel` Conv2d call of one forward of `model` at (1, C, *size), on the meta device."""
    import copy

    found: list[ConvShape] = []
    meta = copy.deepcopy(model).to("meta").eval()

    def hook(module: torch.nn.Conv2d, args: tuple[torch.Tensor, ...]) -> None:
        if module.kernel_size == (kernel, kernel):
            found.append(ConvShape(tuple(args[0].shape), tuple(module.weight.shape), tuple(module.stride),
                                   tuple(module.padding), tuple(module.dilation), module.groups))

    handles = [m.register_forward_pre_hook(hook) for m in meta.modules() if isinstance(m, torch.nn.Conv2d)]
    in_channels = next(m for m in meta.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    try:
        with torch.no_grad():
            meta(torch.empty(1, in_channels, *size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return found


def conv_rate(shapes: list[ConvShape], device: str | torch.device = "cpu", channels_last: bool = True,
              dtype: torch.dtype = torch.float32, repeats: int = 2, top: int | None = None) -> dict[str, Any]:
    """Measured rate of a model's convolutions run one by one (best of `repeats` each) on inputs and weights
    already in `dtype` (no conversion timed: the convolution kernel itself): per distinct shape and for all of
    them together (Σ MACs / Σ seconds). `top`: only the `top` distinct shapes with most MACs."""
    device = torch.device(device)
    counts: dict[ConvShape, int] = {}
    for s in shapes:
        counts[s] = counts.get(s, 0) + 1
    distinct = sorted(counts, key=lambda s: s.macs * counts[s], reverse=True)[:top]
    rows, total_macs, total_s = [], 0.0, 0.0
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    for s in distinct:
        x = torch.randn(s.input, generator=g).to(device, dtype).contiguous(memory_format=fmt)
        w = torch.randn(s.weight, generator=g).to(device, dtype).contiguous(memory_format=fmt)

        def call(x=x, w=w, s=s) -> torch.Tensor:
            with torch.inference_mode():
                return F.conv2d(x, w, None, s.stride, s.padding, s.dilation, s.groups)

        seconds = best_seconds(call, repeats, device)
        rows.append({"input": list(s.input), "weight": list(s.weight), "stride": list(s.stride), "calls": counts[s],
                     "gmacs": s.macs / 1e9, "seconds": seconds, "gflops": flops_per_s(s.macs, seconds)})
        total_macs += s.macs * counts[s]
        total_s += seconds * counts[s]
    return {"channels_last": channels_last, "dtype": str(dtype).removeprefix("torch."),
            "shapes": rows, "gmacs": total_macs / 1e9, "seconds": total_s,
            "gflops": flops_per_s(total_macs, total_s) if total_s else None}


def run(quick: bool = False, device: str | torch.device = "cpu", size: int | None = None) -> dict[str, Any]:
    """The `limit` section: the derived limit and, beside it, the FMA loop's rate (CPU) and the measured fp32
    and bf16 large-matmul rates (fp32 also through oneDNN on a CPU) with their shares (fp32 of the fp32 limit;
    bf16 of the bf16 limit, or of the fp32 one where emulated)."""
    device = torch.device(device)
    probes: dict[str, dict[str, Any]] = {}
    fma: dict[str, Any] = {}
    if device.type == "cuda":
        limit = {"device": torch.cuda.get_device_name(device), **gpu_limit(torch.cuda.get_device_name(device))}
        limit["bf16_units"] = "tensor cores"
        size = size or 8192
    else:
        limit, fma = cpu_limit(quick)
        if "gflops" in fma:
            probes["fma_loop"] = {**fma, "label": f"FMA loop ({fma['width']}-bit, {fma['threads']} threads)",
                                  "limit": "fp32", "share_of_limit": share(fma["gflops"], limit.get("fp32_gflops"))}
        size = size or (2048 if quick else 4096)
    emulated = device.type == "cpu" and not limit.get("bf16_units")
    cases = [("fp32", torch.float32, False), ("bf16", torch.bfloat16, False)]
    if device.type == "cpu" and size % 64 == 0:
        cases.insert(1, ("fp32_onednn", torch.float32, True))
    for label, dtype, as_conv in cases:
        # emulated bf16 matmul runs at a fraction of a GFLOP/s: a 512² product already takes a second
        n = EMULATED_BF16_MATMUL if label == "bf16" and emulated else size
        rate = matmul_rate(device, dtype, n, repeats=2 if quick else 3, as_conv=as_conv)
        if as_conv:
            rate["label"] = f"matmul fp32 ({n}², as a 1×1 convolution: oneDNN)"
        judged = "bf16" if label == "bf16" and limit.get("bf16_gflops") else "fp32"
        rate["limit"] = judged
        rate["share_of_limit"] = share(rate["gflops"], limit.get(f"{judged}_gflops"))
        probes[f"matmul_{label}"] = rate
    out = {"device": str(device), "threads": torch.get_num_threads(), "limit": limit, "probes": probes}
    if fma.get("not_measured"):
        out["fma_loop"] = fma
    return out
