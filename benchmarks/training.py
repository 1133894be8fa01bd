"""Training speed: step time `contextrast` / `ce`, images/s, the loss alone against a plain loop,
BANE's distance transform against scipy, and which operators dominate a training step.

The step and loss figures come from `benchmarks.loss_speed.run` (interleaved, same run, so the ratios hold on
a loaded machine). BANE (METHOD.md §2 "BANE") computes an exact Euclidean distance transform of every
(image, class) error region; `contextrast.losses.edt.region_distance` does the whole batch at once, scipy's
`distance_transform_edt` one mask at a time: both are timed on the same error maps at the four embedding
grids (strides 4, 8, 16, 32) and their outputs compared. scipy is a test extra: without it the column is
skipped. On CUDA, `gpu_steps` times the same steps with AMP.

    python -m benchmarks --only training [--quick]
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.profile_ops import top_ops
from contextrast.config import IGNORE_INDEX, LossConfig
from contextrast.losses import build_loss
from contextrast.losses.edt import BACKGROUND, region_distance
from contextrast.models import build_model

SIZE = (360, 480)
STRIDES = (4, 8, 16, 32)  # embedding grids E1..E4 (METHOD.md §2 "Embeddings")
STEP_RATIO_TARGET = 1.15
LOSS_SPEEDUP_TARGET = 5.0


def error_regions(batch: int, size: tuple[int, int] = SIZE, num_classes: int = 11, seed: int = 0) -> list[torch.Tensor]:
    """BANE's input at each grid: (B, h, w) long, the predicted class on false-positive pixels, -1 elsewhere.

    Ground truth: 16×16 blocks of random classes with an ignore strip (as in loss_speed); prediction: the
    ground truth shifted by 5 pixels, so errors lie along boundaries like a trained model's."""
    from benchmarks.loss_speed import _inputs

    torch.manual_seed(seed)
    _, labels = _inputs(batch, num_classes, seed)
    if labels.shape[-2:] != size:  # loss_speed makes 360×480; other sizes are resized (nearest)
        labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
    prediction = labels.roll(5, dims=2).roll(5, dims=1).clamp(max=num_classes - 1)
    grids = []
    for s in STRIDES:
        y, p = labels[:, ::s, ::s], prediction[:, ::s, ::s]
        error = (y != IGNORE_INDEX) & (p != y)
        grids.append(torch.where(error, p, BACKGROUND))
    return grids


def _scipy_edt(regions: list[torch.Tensor]) -> list[torch.Tensor]:
    """The same distances with scipy, one (image, class) mask at a time."""
    import numpy as np
    from scipy.ndimage import distance_transform_edt

    out = []
    for grid in regions:
        r = grid.numpy()
        d = np.zeros(r.shape, dtype=np.float64)
        for b in range(r.shape[0]):
            for c in np.unique(r[b]):
                if c < 0:
                    continue
                mask = r[b] == c
                d[b][mask] = distance_transform_edt(mask)[mask]
        out.append(torch.from_numpy(d).float())
    return out


def bane_edt(batch: int, repeats: int, size: tuple[int, int] = SIZE) -> dict[str, Any]:
    """Seconds per batch of BANE's distance transform over the four grids: torch (batched) vs scipy (per mask),
    interleaved; plus the largest difference between the two (where the edge exists)."""
    regions = error_regions(batch, size)

    def torch_edt() -> list[torch.Tensor]:
        return [region_distance(r) for r in regions]

    result: dict[str, Any] = {"input": [batch, *size], "grids": [list(r.shape[1:]) for r in regions],
                              "masks": int(sum(len(torch.unique(g[g >= 0])) for r in regions for g in r))}
    try:
        import scipy  # noqa: F401
    except ImportError:
        result["scipy"] = "not installed (a test extra): column skipped"
        fns = [torch_edt]
    else:
        fns = [torch_edt, lambda: _scipy_edt(regions)]
    times: list[list[float]] = [[] for _ in fns]
    outputs = [fn() for fn in fns]  # warm-up, and the outputs to compare
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    result["torch_s"] = statistics.median(times[0])
    if len(fns) == 2:
        result["scipy_s"] = statistics.median(times[1])
        result["speedup"] = result["scipy_s"] / result["torch_s"]
        diffs = [(a - b).abs()[torch.isfinite(a)].max().item() if torch.isfinite(a).any() else 0.0
                 for a, b in zip(outputs[0], outputs[1])]
        result["max_abs_difference"] = max(diffs)
    return result


def loss_speed(quick: bool) -> dict[str, Any]:
    """`benchmarks.loss_speed.run(quick)` plus images/s; its error as a note if that module fails."""
    try:
        from benchmarks import loss_speed as module

        result = dict(module.run(quick))
    except Exception as e:  # report the failure beside the other figures
        return {"error": f"benchmarks.loss_speed failed: {type(e).__name__}: {e}"}
    batch = result["input"][0]
    result["images_per_s_ce"] = batch / result["step_ce_s"]
    result["images_per_s_contextrast"] = batch / result["step_contextrast_s"]
    return result


def profile_step(loss_name: str, batch: int, device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Top operators of one training step (after a warm-up step) of the light SCRNet with `loss_name`."""
    step = train_step(loss_name, batch, device)
    step()
    return top_ops(step, device=device)


def train_step(loss_name: str, batch: int, device: str | torch.device = "cpu", amp: torch.dtype | None = None):
    """A closure running one SGD step (forward, loss past warm-up, backward, step) of a fresh light SCRNet on
    `device`, under autocast `amp` when given (with a gradient scaler for float16)."""
    from benchmarks.loss_speed import _inputs

    device = torch.device(device)
    torch.manual_seed(0)
    model = build_model({}).to(device).train()
    loss_fn = build_loss(LossConfig(name=loss_name), model.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    x, y = (t.to(device) for t in _inputs(batch, model.num_classes))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(x, return_embeddings=loss_fn.needs_embeddings)
            total = loss_fn(out, y, progress=1.0).total
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def gpu_steps(quick: bool, device: str | torch.device = "cuda") -> dict[str, Any]:
    """Step time ce vs contextrast on CUDA, fp32 and AMP (bf16 where supported, else fp16), interleaved."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine"}
    batch, repeats = (4, 5) if quick else (8, 20)
    amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(device), "input": [batch, 3, *SIZE],
                           "amp_dtype": str(amp).replace("torch.", "")}
    for label, dtype in (("fp32", None), ("amp", amp)):
        steps = {name: train_step(name, batch, device, dtype) for name in ("ce", "contextrast")}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for fn in steps.values():
            fn()
        for _ in range(repeats):
            for name, fn in steps.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        ce, ctx = (statistics.median(times[n]) for n in ("ce", "contextrast"))
        out[label] = {"step_ce_s": ce, "step_contextrast_s": ctx, "step_ratio": ctx / ce,
                      "images_per_s_ce": batch / ce, "images_per_s_contextrast": batch / ctx}
    out["profile_contextrast_amp"] = profile_step("contextrast", batch, device)
    return out


def run(quick: bool = False, edt_batch: int | None = None, edt_size: tuple[int, int] = SIZE,
        steps: bool = True) -> dict[str, Any]:
    """Every CPU training figure; `steps=False` leaves out the (minutes-long) step and loss timings."""
    result: dict[str, Any] = {"device": "cpu", "threads": torch.get_num_threads(),
                              "step_ratio_target": STEP_RATIO_TARGET, "loss_speedup_target": LOSS_SPEEDUP_TARGET}
    if steps:
        result["loss_speed"] = loss_speed(quick)
        result["profile_contextrast_step"] = {"input": [1, 3, *SIZE], "top_ops": profile_step("contextrast", 1)}
    batch = edt_batch if edt_batch is not None else (2 if quick else 8)
    result["bane_edt"] = bane_edt(batch, 3 if quick else 7, edt_size)
    return result
