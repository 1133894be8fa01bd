"""The network's pixel-grid convention, one for every resampling in model and labels (METHOD.md §1 "Pixel grid").

A strided convolution with odd kernel k and padding k//2 (every encoder stage, the stem, the max-pool) centres its
output position o on input position s·o. So a feature map of stride s samples the input at s·o, and everything that
moves between grids follows the same rule (`grid="strided"`, the default):

- labels and predictions are read on a stride-s grid at input pixel min(s·o, H−1) (`sample_indices`);
- a map of stride s_c is upsampled to stride s_f by reading it at fine index j ↦ j·s_f/s_c (`upsample`), so a
  bilinear upsampling moves no edge (torch's `align_corners=False` reads at (j+½)·s_f/s_c − ½ instead: a
  systematic shift of (s_c/s_f − 1)/2 fine pixels per step, which SRM's offsets could learn to undo);
- a map is pooled to a coarser stride with windows centred on s·o (`pool_to`).

`grid="centred"` is the convention the project used before (bilinear `align_corners=False`, adaptive average
pooling): a switch, so that checkpoints trained with it load unchanged and the half-pixel shift can be ablated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

GRIDS = ("strided", "centred")


def stride_between(fine: int, coarse: int) -> int:
    """The integer stride ratio of two map sizes of one image (power-of-two strides, sizes rounded up by the
    strided convolutions: 45 → 23 → 12 are ratios 2 and 4). 1 when `coarse` ≥ `fine`."""
    if coarse >= fine:
        return 1
    return 2 ** max(0, round(math.log2(fine / coarse)))


def sample_indices(size_in: int, size_out: int, device: torch.device | None = None) -> Tensor:
    """Indices into a line of `size_in` pixels read by a grid of `size_out` (nearest, strided convention):
    (size_out,) long, o ↦ min(s·o, size_in − 1) with s = `stride_between(size_in, size_out)`."""
    s = stride_between(size_in, size_out)
    return (torch.arange(size_out, device=device) * s).clamp_(max=size_in - 1)


def upsample(x: Tensor, size: tuple[int, int], grid: str = "strided") -> Tensor:
    """Bilinear upsampling of x (B, C, h, w) to `size` = (H, W) in the pixel-grid convention.

    strided: output (j, i) reads x at (j/s_y, i/s_x), s = `stride_between`; beyond the last source pixel the
    border value is held (as `padding_mode="border"`). Exactly: extend x by repeating its last row / column, resample with
    `align_corners=True` to s·(h' − 1) + 1 pixels (so that index j lands on j/s), keep the first H.
    centred: `F.interpolate(..., align_corners=False)`.
    """
    if grid == "centred":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if grid != "strided":
        raise ValueError(f"grid must be one of {', '.join(GRIDS)}; got {grid!r}")
    h, w = x.shape[-2:]
    out_h, out_w = int(size[0]), int(size[1])
    if (h, w) == (out_h, out_w):
        return x
    sy, sx = stride_between(out_h, h), stride_between(out_w, w)
    pad_h = max(0, math.ceil((out_h - 1) / sy) - (h - 1))
    pad_w = max(0, math.ceil((out_w - 1) / sx) - (w - 1))
    if pad_h:  # replicate the last row / column by index (F.pad's replicate backward breaks torch.compile)
        x = x.index_select(-2, torch.arange(h + pad_h, device=x.device).clamp_(max=h - 1))
    if pad_w:
        x = x.index_select(-1, torch.arange(w + pad_w, device=x.device).clamp_(max=w - 1))
    full = (sy * (h + pad_h - 1) + 1, sx * (w + pad_w - 1) + 1)
    out = F.interpolate(x, size=full, mode="bilinear", align_corners=True)
    return out[..., :out_h, :out_w]


def pool_to(x: Tensor, size: tuple[int, int], grid: str = "strided") -> Tensor:
    """Average-pool x (B, C, h, w) to the coarser `size` (B, C, h', w').

    strided: windows of s + 1 pixels centred on s·o (count_include_pad=False), s = the stride ratio per axis, so
    the pooled value sits where the coarse map's own features do. centred: `adaptive_avg_pool2d`.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if grid == "centred":
        return F.adaptive_avg_pool2d(x, size)
    sy, sx = stride_between(x.shape[-2], size[0]), stride_between(x.shape[-1], size[1])
    kernel = (sy + 1 if sy > 1 else 1, sx + 1 if sx > 1 else 1)
    pooled = F.avg_pool2d(x, kernel, (sy, sx), (kernel[0] // 2, kernel[1] // 2), count_include_pad=False)
    return pooled[..., : size[0], : size[1]]
