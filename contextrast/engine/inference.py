"""Test-time inference: sliding windows, horizontal flip and multi-scale averaging of class probabilities.

The published numbers of METHOD.md §3 use multi-scale and flip testing; `predict_logits` reproduces that
protocol: within one scale, overlapping windows' logits are averaged; the softmax of every (scale, flip)
view is resized to the input size and the probabilities are averaged. Every forward runs in the precision
given (`contextrast.engine.precision`: fp32, or bf16 autocast); the averaging is in fp32.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contextrast.engine.precision import autocast


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` → cuda when available (this process's LOCAL_RANK under torchrun), else cpu;
    `cuda` without a GPU is refused clearly."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
    return dev


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """Eval mode and channels_last weights: faster than the default layout for fp32 and bf16 alike on the
    CPUs measured (benchmarks/inference.py, interleaved same-run comparison; docs/performance.md)."""
    return model.eval().to(memory_format=torch.channels_last)


def logits_of(out: Tensor | object) -> Tensor:
    """The logits (B, K, H, W) of a model's output: the tensor itself, or its `.logits` (`SCRNetOutput`)."""
    return out if isinstance(out, Tensor) else out.logits


def class_indices(scores: Tensor, dim: int = 1) -> Tensor:
    """The class of each pixel: the index of the highest score along `dim` ((B, K, H, W) → (B, H, W) int64 with
    dim=1, (K, H, W) → (H, W) with dim=0), the first one where scores tie, NaN counting as the highest.

    `Tensor.max(dim).indices` rather than `argmax(dim)`: the same indices (ties and NaN included), but on CPU
    argmax over a non-innermost dimension takes a slow path, 5-10x slower for 11 classes at 360×480
    (70-120 ms against 8-13 ms for a batch of four, torch 2.13; tests/test_inference.py checks they agree)."""
    return scores.max(dim=dim).indices


def _forward(model: nn.Module, x: Tensor, precision: str = "fp32", as_float: bool = True) -> Tensor:
    with autocast(precision, x.device):
        logits = logits_of(model(x))
    return logits.float() if as_float else logits


def _window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets covering [0, size) with windows of `window` (size ≥ window); the last one flush right."""
    count = max(math.ceil((size - window) / stride), 0) + 1
    return sorted({min(i * stride, size - window) for i in range(count)})


def sliding_window_logits(model: nn.Module, image: Tensor, crop: tuple[int, int], stride_ratio: float = 2 / 3,
                          precision: str = "fp32") -> Tensor:
    """image (B, 3, H, W) → logits (B, K, H, W), averaging overlapping `crop`-sized windows.

    An image smaller than the crop in a dimension is zero-padded (zero = the mean after normalisation) at the
    bottom/right and the padding cropped off the output. Stride = ceil(crop · stride_ratio).
    """
    ch, cw = (int(c) for c in crop)
    if ch < 1 or cw < 1:
        raise ValueError(f"crop must be two positive sizes; got {crop}")
    if not 0 < stride_ratio <= 1:
        raise ValueError(f"stride_ratio must lie in (0, 1]; got {stride_ratio}")
    b, _, h, w = image.shape
    pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h))
    ph, pw = image.shape[-2:]
    sh, sw = max(1, math.ceil(ch * stride_ratio)), max(1, math.ceil(cw * stride_ratio))
    total: Tensor | None = None
    count = torch.zeros(1, 1, ph, pw, device=image.device, dtype=image.dtype)
    for y in _window_starts(ph, ch, sh):
        for x in _window_starts(pw, cw, sw):
            logits = _forward(model, image[:, :, y : y + ch, x : x + cw], precision)
            if total is None:
                total = logits.new_zeros(b, logits.shape[1], ph, pw)
            total[:, :, y : y + ch, x : x + cw] += logits
            count[:, :, y : y + ch, x : x + cw] += 1
    assert total is not None
    return (total / count)[:, :, :h, :w]


def predict_logits(
    model: nn.Module,
    image: Tensor,
    crop: tuple[int, int] | None = None,
    stride_ratio: float = 2 / 3,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    return_logits: bool = False,
    precision: str = "fp32",
) -> Tensor:
    """image (B, 3, H, W), normalised → class probabilities (B, K, H, W), averaged over views.

    Views: each scale in `scales` (image resized bilinearly), and its horizontal mirror when `flip`.
    A view larger than `crop` (H, W) in either dimension runs as sliding windows; `crop=None` runs whole.
    `return_logits=True` returns log of the averaged probabilities instead (softmax of it gives them back;
    for a single view it equals log_softmax of the model's logits). Runs under `torch.inference_mode`, each
    forward in `precision` ('fp32' or 'bf16', resolved by `contextrast.engine.precision.resolve_precision`);
    the caller puts the model in eval mode.
    """
    if image.dim() != 4:
        raise ValueError(f"image must have shape (B, C, H, W); got {tuple(image.shape)}")
    scales = tuple(float(s) for s in scales)
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales must be positive numbers; got {scales}")
    h, w = image.shape[-2:]
    probs: Tensor | None = None
    views = 0
    with torch.inference_mode():
        for scale in scales:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            scaled = image if size == (h, w) else F.interpolate(image, size=size, mode="bilinear", align_corners=False)
            for mirrored in (False, True) if flip else (False,):
                x = scaled.flip(-1) if mirrored else scaled
                if crop is not None and (size[0] > crop[0] or size[1] > crop[1]):
                    logits = sliding_window_logits(model, x, crop, stride_ratio, precision)
                else:
                    logits = _forward(model, x, precision)
                if mirrored:
                    logits = logits.flip(-1)
                if logits.shape[-2:] != (h, w):
                    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
                p = logits.float().softmax(dim=1)
                probs = p if probs is None else probs + p
                views += 1
        assert probs is not None
        probs = probs / views
        return probs.clamp_min(1e-12).log() if return_logits else probs


def predict_labels(
    model: nn.Module,
    image: Tensor,
    crop: tuple[int, int] | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    precision: str = "fp32",
) -> Tensor:
    """image (B, 3, H, W), normalised → predicted classes (B, H, W) int64: the argmax of `predict_logits`.

    With a single view (scale 1, no flip, the image within the crop) softmax and averaging are skipped: the
    argmax of the logits is that of their softmax, and on CPU the softmax costs a few percent of the forward.
    """
    h, w = image.shape[-2:]
    single = not flip and tuple(float(s) for s in scales) == (1.0,) and (crop is None or (h <= crop[0] and w <= crop[1]))
    if not single:
        return class_indices(predict_logits(model, image, crop=crop, flip=flip, scales=scales, precision=precision))
    if image.dim() != 4:
        raise ValueError(f"image must have shape (B, C, H, W); got {tuple(image.shape)}")
    with torch.inference_mode():  # the classes of bf16 logits are those of their fp32 copy: no copy made
        return class_indices(_forward(model, image, precision, as_float=False))
