"""Context modules on top of the encoder (METHOD.md §1 "CRM"), registered in `CONTEXTS` under the `context`
switch: `crm` (all four stages), `crm_f4` (F4 only), `ppm` (pyramid pooling baseline), `none`.

A context module's forward is `(feats [F1..F4], intervention) → ((B, C, h4, w4), CRMIntermediates | None)`.
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
from contextrast.models.registry import CHANNEL_ENERGIES, CONTEXTS, SPATIAL_ENERGIES
from contextrast.pixel_grid import pool_to

# How the channel energy X Xᵀ (C×C, a sum over the N positions) is scaled before the row softmax (METHOD.md §4).
CHANNEL_ENERGIES.register("mean", "E / N: the mean product over positions, the same scale at every input size")(
    lambda e, n: e / n
)
CHANNEL_ENERGIES.register("sqrt_n", "E / √N, as dot-product attention scales by √d")(lambda e, n: e / math.sqrt(n))
CHANNEL_ENERGIES.register("max_minus", "DANet's max(E) − E (row-wise), unscaled")(
    lambda e, n: e.amax(dim=-1, keepdim=True) - e
)
CHANNEL_ENERGIES.register("none", "E unscaled (peaks with the number of positions)")(lambda e, n: e)

SPATIAL_ENERGIES.register("none", "Qᵀ K unscaled (DANet position attention)")(lambda e, d: e)
SPATIAL_ENERGIES.register("sqrt_d", "Qᵀ K / √d, d = C/8 (scaled dot-product attention)")(lambda e, d: e / math.sqrt(d))


@dataclass
class CRMIntermediates:
    """channel_attn: A_c (B, C, C).  spatial_attn: A_s (B, N, N), N = h4·w4 (row-major over F4's grid).
    grid: (h4, w4), the size of F4, to map a row of A_s back onto the image."""

    channel_attn: Tensor
    spatial_attn: Tensor
    grid: tuple[int, int]


class ChannelAttention(nn.Module):
    """DANet channel attention: A_c = softmax_row(scale(X Xᵀ)), E = γ_c·(A_c X) + X, γ_c starts at 0."""

    def __init__(self, energy: str = "none") -> None:
        super().__init__()
        self.energy = energy
        self.scale = CHANNEL_ENERGIES.get(energy)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, off: bool = False) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        flat = x.float().reshape(b, c, h * w)  # fp32: X Xᵀ sums N products and overflows fp16
        attn = self.scale(torch.bmm(flat, flat.transpose(1, 2)), h * w).softmax(dim=-1)
        if off:
            return x, attn
        out = torch.bmm(attn, flat).view(b, c, h, w)
        return (self.gamma * out + x.float()).to(x.dtype), attn


class SpatialAttention(nn.Module):
    """DANet position attention: A_s = softmax_row(scale(Qᵀ K)) (N×N), Y = γ_s·(V A_sᵀ) + E, γ_s starts at 0."""

    def __init__(self, channels: int, energy: str = "none"):
        super().__init__()
        self.key_dim = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, self.key_dim, 1)
        self.key = nn.Conv2d(channels, self.key_dim, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.energy = energy
        self.scale = SPATIAL_ENERGIES.get(energy)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, off: bool = False) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        q = self.query(x).float().flatten(2)  # (B, C/8, N)
        k = self.key(x).float().flatten(2)
        attn = self.scale(torch.bmm(q.transpose(1, 2), k), self.key_dim).softmax(dim=-1)  # (B, N, N): row p over q
        if off:
            return x, attn
        v = self.value(x).float().flatten(2)  # (B, C, N)
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)
        return (self.gamma * out + x.float()).to(x.dtype), attn


class ContextualRefinementModule(nn.Module):
    """CRM: aggregate stages → channel attention → spatial attention → 3×3 conv.

    Input [F1..F4] with channels `in_channels`; F1..F3 are average-pooled to F4's size (`pixel_grid.pool_to`)
    and concatenated with F4 (`stages=(0,1,2,3)`; `crm_f4` uses `stages=(3,)`). Output (B, C, h4, w4).
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        out_channels: int,
        stages: tuple[int, ...] = (0, 1, 2, 3),
        channel_energy: str = "none",
        spatial_energy: str = "none",
        grid: str = "centred",
    ):
        super().__init__()
        self.stages, self.grid = stages, grid
        self.aggregate = conv_bn_relu(sum(in_channels[i] for i in stages), out_channels, k=1)
        self.channel_attention = ChannelAttention(channel_energy)
        self.spatial_attention = SpatialAttention(out_channels, spatial_energy)
        self.out = conv_bn_relu(out_channels, out_channels)

    def attend(self, x: Tensor, off: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Channel then spatial attention on the aggregated map: (B, C, h, w) → same, A_c, A_s.
        `off`: the attention maps are computed (to draw them) but add nothing (γ = 0)."""
        e, a_c = self.channel_attention(x, off)
        y, a_s = self.spatial_attention(e, off)
        return y, a_c, a_s

    def forward(self, feats: list[Tensor], intervention: Intervention | None = None) -> tuple[Tensor, CRMIntermediates]:
        size = tuple(feats[3].shape[-2:])
        parts = [pool_to(feats[i], size, self.grid) for i in self.stages]
        x = self.aggregate(torch.cat(parts, dim=1))
        y, a_c, a_s = self.attend(x, off=intervention is not None and intervention.crm_off)
        return self.out(y), CRMIntermediates(a_c, a_s, (int(size[0]), int(size[1])))


class PyramidPooling(nn.Module):
    """PSPNet pyramid pooling on F4 (bins 1, 2, 3, 6): the `ppm` baseline."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        c4 = in_channels[3]
        branch = max(c4 // len(bins), 8)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(c4, branch, 1, bias=False), nn.ReLU(inplace=True)) for b in bins
        )
        self.out = conv_bn_relu(c4 + branch * len(bins), out_channels)

    def forward(self, feats: list[Tensor], intervention: Intervention | None = None) -> tuple[Tensor, None]:
        f4 = feats[3]
        # bins are areas of F4 (adaptive pooling), so they go back with the area (centred) convention
        pooled = [F.interpolate(br(f4), size=f4.shape[-2:], mode="bilinear", align_corners=False) for br in self.branches]
        return self.out(torch.cat([f4, *pooled], dim=1)), None


class NoContext(nn.Module):
    """`context=none`: a 1×1 projection of F4 to the decoder width."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int):
        super().__init__()
        self.proj = conv_bn_relu(in_channels[3], out_channels, k=1)

    def forward(self, feats: list[Tensor], intervention: Intervention | None = None) -> tuple[Tensor, None]:
        return self.proj(feats[3]), None


def _crm(stages: tuple[int, ...]):
    def build(in_channels: tuple[int, ...], out_channels: int, cfg: ModelConfig) -> ContextualRefinementModule:
        return ContextualRefinementModule(
            in_channels, out_channels, stages, cfg.channel_energy, cfg.spatial_energy, cfg.grid
        )

    return build


CONTEXTS.register("crm", "CRM over all four stages: channel then spatial attention (default)")(_crm((0, 1, 2, 3)))
CONTEXTS.register("crm_f4", "CRM over F4 only (tests the all-four-stages claim)")(_crm((3,)))
CONTEXTS.register("ppm", "PSPNet pyramid pooling on F4 (baseline)")(lambda cin, cout, cfg: PyramidPooling(cin, cout))
CONTEXTS.register("none", "no context module: a 1×1 projection of F4")(lambda cin, cout, cfg: NoContext(cin, cout))
