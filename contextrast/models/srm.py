"""Semantic Refinement Module (METHOD.md §1 "SRM"): learned per-pixel upsampling offsets,
refined by a neighbour mask, that warp the upsampled coarse feature onto the fine one."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contextrast.models.layers import conv_bn_relu
from contextrast.registry import check_choice

SRM_MODES = ("srm", "srm_nomask", "srm_sigmoid")


@dataclass
class SRMIntermediates:
    """What one SRM did, on the high-resolution grid (h, w) of F.

    offset_init: Δ′ (B, 2, h, w), (dx, dy) in pixels.  offset: Δ (B, 2, h, w), the offsets used.
    mask: M_w (B, 9, h, w) over the 3×3 neighbourhood (row-major, k = (dy+1)*3 + (dx+1)), or None.
    """

    offset_init: Tensor
    offset: Tensor
    mask: Tensor | None


def identity_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Pixel-centre coordinates (1, h, w, 2) as (x, y) in pixels."""
    ys = torch.arange(h, device=device, dtype=dtype)
    xs = torch.arange(w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1).unsqueeze(0)


def warp(feature: Tensor, offset: Tensor) -> Tensor:
    """Sample `feature` (B, C, h, w) at p + Δ(p), Δ = `offset` (B, 2, h, w) in pixels.

    Bilinear, border padding, align_corners=False: a zero offset samples every pixel centre and
    returns `feature` unchanged (to float rounding).
    """
    b, _, h, w = feature.shape
    pos = identity_grid(h, w, feature.device, offset.dtype) + offset.permute(0, 2, 3, 1)
    scale = torch.tensor([2.0 / w, 2.0 / h], device=feature.device, dtype=offset.dtype)
    grid = (pos + 0.5) * scale - 1.0  # pixel centre x ↦ (2x + 1)/w − 1
    return F.grid_sample(feature, grid.to(feature.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def neighbour_combine(offset_init: Tensor, weights: Tensor) -> Tensor:
    """Δ(p) = Σ_k M_w(k, p) · Δ′(p + k) over the 3×3 neighbourhood (zero outside the image).

    offset_init (B, 2, h, w), weights (B, 9, h, w) → (B, 2, h, w).
    """
    b, _, h, w = offset_init.shape
    patches = F.unfold(offset_init, kernel_size=3, padding=1).view(b, 2, 9, h, w)
    return (patches * weights.unsqueeze(1)).sum(dim=2)


class SemanticRefinementModule(nn.Module):
    """One top-down step of the decoder: coarse G (B, C, h/2, w/2) + fine F (B, c_f, h, w) → (B, C, h, w).

    mode: `srm` (softmax neighbour mask), `srm_nomask` (Δ = Δ′), `srm_sigmoid` (sigmoid weights,
    not normalised). The last offset conv is zero-initialised, so training starts as bilinear FPN.
    """

    def __init__(self, coarse_channels: int, fine_channels: int, mode: str = "srm", mid_channels: int | None = None):
        super().__init__()
        check_choice("align", mode, SRM_MODES)
        self.mode = mode
        mid = mid_channels or max(coarse_channels // 2, 16)
        self.reduce_coarse = nn.Conv2d(coarse_channels, mid, 1, bias=False)
        self.reduce_fine = nn.Conv2d(fine_channels, mid, 1, bias=False)
        self.offset_head = nn.Sequential(conv_bn_relu(2 * mid, mid), nn.Conv2d(mid, 2, 3, padding=1))
        nn.init.zeros_(self.offset_head[-1].weight)
        nn.init.zeros_(self.offset_head[-1].bias)
        self.mask_head = None if mode == "srm_nomask" else nn.Conv2d(2 * mid, 9, 3, padding=1)
        self.lateral = nn.Sequential(nn.Conv2d(fine_channels, coarse_channels, 1, bias=False), nn.BatchNorm2d(coarse_channels))
        self.fuse = conv_bn_relu(coarse_channels, coarse_channels)

    def forward(self, coarse: Tensor, fine: Tensor) -> tuple[Tensor, SRMIntermediates]:
        up = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat((self.reduce_coarse(up), self.reduce_fine(fine)), dim=1)
        offset_init = self.offset_head(x).float()  # offsets in fp32: sub-pixel positions matter
        mask = None
        if self.mask_head is None:
            offset = offset_init
        else:
            logits = self.mask_head(x).float()
            mask = logits.softmax(dim=1) if self.mode == "srm" else logits.sigmoid()
            offset = neighbour_combine(offset_init, mask)
        warped = warp(up, offset)
        out = self.fuse(warped + self.lateral(fine))
        return out, SRMIntermediates(offset_init, offset, mask)


class BilinearFuse(nn.Module):
    """Plain FPN step (`align=bilinear`): bilinear-upsampled G + lateral 1×1(F), then 3×3 conv."""

    def __init__(self, coarse_channels: int, fine_channels: int):
        super().__init__()
        self.lateral = nn.Sequential(nn.Conv2d(fine_channels, coarse_channels, 1, bias=False), nn.BatchNorm2d(coarse_channels))
        self.fuse = conv_bn_relu(coarse_channels, coarse_channels)

    def forward(self, coarse: Tensor, fine: Tensor) -> tuple[Tensor, None]:
        up = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(up + self.lateral(fine)), None
