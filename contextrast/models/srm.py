"""Semantic Refinement Module (METHOD.md §1 "SRM"): learned per-pixel upsampling offsets,
refined by a neighbour mask, that warp the upsampled coarse feature onto the fine one.

Each decoder step (`align` switch) is registered in `ALIGNS` as a factory
`(coarse_channels, fine_channels, config) → module`; a module's forward is
`(coarse G (B, C, h/2, w/2), fine F (B, c_f, h, w), intervention) → ((B, C, h, w), SRMIntermediates | None)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contextrast.config import ModelConfig
from contextrast.models.intervention import Intervention
from contextrast.models.layers import conv_bn_relu
from contextrast.models.registry import ALIGNS
from contextrast.pixel_grid import upsample

CENTRE = 4  # index of the centre in the row-major 3×3 neighbourhood


@dataclass
class SRMIntermediates:
    """What one SRM did, on the high-resolution grid (h, w) of F.

    offset_init: Δ′ (B, 2, h, w), (dx, dy) in pixels of that grid.  offset: Δ (B, 2, h, w), the offsets used.
    mask: M_w (B, 9, h, w) over the 3×3 neighbourhood (row-major, k = (dy+1)*3 + (dx+1)), or None.
    upsampled: G↑ (B, C, h, w) before warping; warped: Ĝ after it (both only for analysis: eval-mode forwards).
    """

    offset_init: Tensor
    offset: Tensor
    mask: Tensor | None
    upsampled: Tensor | None = None
    warped: Tensor | None = None


def identity_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Pixel coordinates (1, h, w, 2) as (x, y) in pixels."""
    ys = torch.arange(h, device=device, dtype=dtype)
    xs = torch.arange(w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1).unsqueeze(0)


def warp(feature: Tensor, offset: Tensor) -> Tensor:
    """Sample `feature` (B, C, h, w) at p + Δ(p), Δ = `offset` (B, 2, h, w) in pixels of the same grid.

    Bilinear, border padding: a zero offset returns `feature` unchanged (to float rounding). Non-finite
    offsets (a diverged run) are read as 0, because `grid_sample`'s CPU backward crashes on a NaN grid.
    """
    b, _, h, w = feature.shape
    offset = torch.nan_to_num(offset, nan=0.0, posinf=0.0, neginf=0.0)
    pos = identity_grid(h, w, feature.device, offset.dtype) + offset.permute(0, 2, 3, 1)
    scale = torch.tensor([2.0 / w, 2.0 / h], device=feature.device, dtype=offset.dtype)
    grid = (pos + 0.5) * scale - 1.0  # pixel x ↦ (2x + 1)/w − 1 under align_corners=False
    return F.grid_sample(feature, grid.to(feature.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def neighbour_combine(offset_init: Tensor, weights: Tensor) -> Tensor:
    """Δ(p) = Σ_k M_w(k, p) · Δ′(p + k) over the 3×3 neighbourhood (zero outside the image).

    offset_init (B, 2, h, w), weights (B, 9, h, w) → (B, 2, h, w).
    """
    b, _, h, w = offset_init.shape
    patches = F.unfold(offset_init, kernel_size=3, padding=1).view(b, 2, 9, h, w)
    return (patches * weights.unsqueeze(1)).sum(dim=2)


def bound_offsets(raw: Tensor, bound: float) -> Tensor:
    """Δ′ = b·tanh(raw / b): near-identity for small offsets, never beyond ±b pixels per axis (b = 0: unbounded)."""
    return raw if bound <= 0 else bound * torch.tanh(raw / bound)


class SemanticRefinementModule(nn.Module):
    """One top-down step of the decoder: coarse G (B, C, h/2, w/2) + fine F (B, c_f, h, w) → (B, C, h, w).

    mode: `srm` (softmax neighbour mask), `srm_nomask` (Δ = Δ′), `srm_sigmoid` (sigmoid weights, not
    normalised). The last offset conv is zero-initialised, so training starts as bilinear FPN. `offset_bound`
    bounds Δ′ (`bound_offsets`); `mask_init="centre"` starts the mask at half its weight on the pixel itself.
    """

    def __init__(
        self,
        coarse_channels: int,
        fine_channels: int,
        mode: str = "srm",
        mid_channels: int | None = None,
        offset_bound: float = 0.0,
        mask_init: str = "random",
        grid: str = "centred",
    ):
        super().__init__()
        if mode not in ("srm", "srm_nomask", "srm_sigmoid"):
            raise ValueError(f"SRM mode must be srm, srm_nomask or srm_sigmoid; got {mode!r}")
        self.mode, self.offset_bound, self.grid = mode, float(offset_bound), grid
        mid = mid_channels or max(coarse_channels // 2, 16)
        self.reduce_coarse = nn.Conv2d(coarse_channels, mid, 1, bias=False)
        self.reduce_fine = nn.Conv2d(fine_channels, mid, 1, bias=False)
        self.offset_head = nn.Sequential(conv_bn_relu(2 * mid, mid), nn.Conv2d(mid, 2, 3, padding=1))
        nn.init.zeros_(self.offset_head[-1].weight)
        nn.init.zeros_(self.offset_head[-1].bias)
        self.mask_head = None if mode == "srm_nomask" else nn.Conv2d(2 * mid, 9, 3, padding=1)
        if self.mask_head is not None and mask_init == "centre":
            init_mask_at_centre(self.mask_head, mode)
        self.lateral = nn.Sequential(nn.Conv2d(fine_channels, coarse_channels, 1, bias=False), nn.BatchNorm2d(coarse_channels))
        self.fuse = conv_bn_relu(coarse_channels, coarse_channels)

    def forward(self, coarse: Tensor, fine: Tensor, intervention: Intervention | None = None) -> tuple[Tensor, SRMIntermediates]:
        up = upsample(coarse, tuple(fine.shape[-2:]), self.grid)
        x = torch.cat((self.reduce_coarse(up), self.reduce_fine(fine)), dim=1)
        offset_init = bound_offsets(self.offset_head(x).float(), self.offset_bound)  # fp32: sub-pixel positions
        mask = None
        if self.mask_head is None or (intervention is not None and intervention.mask_off):
            offset = offset_init
        else:
            logits = self.mask_head(x).float()
            mask = logits.softmax(dim=1) if self.mode == "srm" else logits.sigmoid()
            offset = neighbour_combine(offset_init, mask)
        if intervention is not None:
            offset = intervention.apply_to_offsets(offset)
        warped = warp(up, offset)
        out = self.fuse(warped + self.lateral(fine))
        keep = not self.training  # analysis forwards keep the features before/after warping
        return out, SRMIntermediates(offset_init, offset, mask, up if keep else None, warped if keep else None)


def init_mask_at_centre(conv: nn.Conv2d, mode: str) -> None:
    """Zero weights and a bias that puts weight ½ on the centre and 1/16 on each neighbour (softmax), or
    sigmoid weights ½ / 1/16 (srm_sigmoid): refinement starts close to Δ = Δ′ instead of a random 3×3 blur."""
    nn.init.zeros_(conv.weight)
    with torch.no_grad():
        if mode == "srm":
            conv.bias.zero_()
            conv.bias[CENTRE] = math.log(8.0)  # e^b / (e^b + 8) = ½
        else:
            conv.bias.fill_(-math.log(15.0))  # sigmoid = 1/16
            conv.bias[CENTRE] = 0.0  # sigmoid = ½


class BilinearFuse(nn.Module):
    """Plain FPN step (`align=bilinear`): bilinear-upsampled G + lateral 1×1(F), then 3×3 conv."""

    def __init__(self, coarse_channels: int, fine_channels: int, grid: str = "centred"):
        super().__init__()
        self.grid = grid
        self.lateral = nn.Sequential(nn.Conv2d(fine_channels, coarse_channels, 1, bias=False), nn.BatchNorm2d(coarse_channels))
        self.fuse = conv_bn_relu(coarse_channels, coarse_channels)

    def forward(self, coarse: Tensor, fine: Tensor, intervention: Intervention | None = None) -> tuple[Tensor, None]:
        up = upsample(coarse, tuple(fine.shape[-2:]), self.grid)
        return self.fuse(up + self.lateral(fine)), None


def _srm(mode: str):
    def build(coarse_channels: int, fine_channels: int, cfg: ModelConfig) -> SemanticRefinementModule:
        return SemanticRefinementModule(
            coarse_channels, fine_channels, mode, offset_bound=cfg.offset_bound, mask_init=cfg.mask_init, grid=cfg.grid
        )

    return build


ALIGNS.register("srm", "SRM: offsets Δ′ refined by a softmax 3×3 neighbour mask (default)")(_srm("srm"))
ALIGNS.register("srm_nomask", "SRM without the neighbour mask: Δ = Δ′")(_srm("srm_nomask"))
ALIGNS.register("srm_sigmoid", "SRM with an unnormalised sigmoid neighbour mask")(_srm("srm_sigmoid"))
ALIGNS.register("bilinear", "plain FPN: bilinear upsampling, no offsets (baseline)")(
    lambda coarse_channels, fine_channels, cfg: BilinearFuse(coarse_channels, fine_channels, cfg.grid)
)
