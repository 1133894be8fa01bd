"""Exact Euclidean distance transform in pure torch, for BANE's error regions (METHOD.md §2 "BANE").

Two separable passes (Meijster/Felzenszwalb's decomposition, written for vectorised tensors):
1. along one axis, the 1-D distance of every pixel to the nearest pixel of a *different* region label
   in its line (runs of equal labels are contiguous, so it is the distance to the run's ends);
2. along the other axis, the exact minimum over k of g(k)² + (j−k)², by brute force over the line
   (O(n²) per line, so that pass runs along the shorter axis, chunked to bound memory).

Many labelled regions are handled in one pass because a region-c pixel's distance only depends on
"same label c" vs "anything else": the result equals `scipy.ndimage.distance_transform_edt(regions == c)`
on every pixel of label c, for every c at once.
"""

from __future__ import annotations

import torch
from torch import Tensor

BACKGROUND = -1
_CHUNK_ELEMENTS = 1 << 24  # bound on the (B, rows, n, n) brute-force tensor of pass 2


def _line_distance(regions: Tensor) -> Tensor:
    """regions (B, n, m) long → (B, n, m) float: distance along dim 1 to the nearest different label (inf if none)."""
    b, n, m = regions.shape
    idx = torch.arange(n, device=regions.device).view(1, n, 1)
    ones = torch.ones(b, 1, m, dtype=torch.bool, device=regions.device)
    change = regions[:, 1:] != regions[:, :-1]
    run_start = torch.where(torch.cat([ones, change], 1), idx, 0).cummax(1).values
    run_end_flag = torch.cat([change, ones], 1)
    run_end = torch.where(run_end_flag, idx, n - 1).flip(1).cummin(1).values.flip(1)
    inf = torch.tensor(float("inf"), device=regions.device)
    up = torch.where(run_start > 0, (idx - run_start + 1).float(), inf)
    down = torch.where(run_end < n - 1, (run_end + 1 - idx).float(), inf)
    return torch.minimum(up, down)


def region_distance(regions: Tensor) -> Tensor:
    """Exact distance of every region pixel to the edge of its own region.

    regions: (B, h, w) long, a region label ≥ 0 per pixel or -1 (`BACKGROUND`).
    Returns (B, h, w) float32: for a pixel of label c, the Euclidean distance (in pixels) to the
    nearest pixel whose label is not c (= scipy's `distance_transform_edt(regions[b] == c)` there);
    0 on background; inf where image b has no pixel other than label c (the edge does not exist).
    """
    if regions.dim() != 3:
        raise ValueError(f"regions must be (B, h, w); got shape {tuple(regions.shape)}")
    regions = regions.long()
    transposed = regions.shape[2] > regions.shape[1]
    if transposed:  # pass 2 is quadratic in the line length: give it the shorter axis
        regions = regions.transpose(1, 2)
    regions = regions.contiguous()
    b, n, m = regions.shape
    g2 = _line_distance(regions).square()  # (B, n, m)
    k = torch.arange(m, device=regions.device, dtype=torch.float32)
    offset2 = (k[:, None] - k[None, :]).square()  # (m, m): (j − k)²
    rows = max(1, _CHUNK_ELEMENTS // max(1, b * m * m))
    out = torch.empty(b, n, m, device=regions.device)
    zero = torch.zeros((), device=regions.device)
    for r0 in range(0, n, rows):
        lab = regions[:, r0 : r0 + rows]  # (B, r, m)
        same = lab[..., :, None] == lab[..., None, :]  # (B, r, j, k)
        cand = torch.where(same, g2[:, r0 : r0 + rows, None, :], zero) + offset2
        out[:, r0 : r0 + rows] = cand.amin(-1)
    out = torch.where(regions >= 0, out.sqrt(), zero)
    return out.transpose(1, 2) if transposed else out


def distance_transform_edt(mask: Tensor) -> Tensor:
    """`scipy.ndimage.distance_transform_edt` for a batch of masks: (B, h, w) bool → (B, h, w) float32
    (0 off the mask; inf on an image whose mask has no background at all)."""
    return region_distance(torch.where(mask.bool(), 0, BACKGROUND))
