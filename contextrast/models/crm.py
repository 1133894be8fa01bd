"""Context modules on top of the encoder (METHOD.md §1 "CRM"), selected by `context`:
`crm` (all four stages), `crm_f4` (F4 only), `ppm` (pyramid pooling baseline), `none`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contextrast.models.layers import conv_bn_relu
from contextrast.registry import Registry


@dataclass
class CRMIntermediates:
    """channel_attn: A_c (B, C, C).  spatial_attn: A_s (B, N, N), N = h4·w4 (row-major over F4's grid).
    grid: (h4, w4), the size of F4, to map a row of A_s back onto the image."""

    channel_attn: Tensor
    spatial_attn: Tensor
    grid: tuple[int, int]


class ChannelAttention(nn.Module):
    """DANet channel attention: A_c = softmax_row(X Xᵀ), E = γ_c·(A_c X) + X, γ_c starts at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        flat = x.float().reshape(b, c, h * w)  # fp32: X Xᵀ sums N products and overflows fp16
        attn = torch.bmm(flat, flat.transpose(1, 2)).softmax(dim=-1)
        out = torch.bmm(attn, flat).view(b, c, h, w)
        return (self.gamma * out + x.float()).to(x.dtype), attn


class SpatialAttention(nn.Module):
    """DANet position attention: A_s = softmax_row(Qᵀ K) (N×N), Y = γ_s·(V A_sᵀ) + E, γ_s starts at 0."""

    def __init__(self, channels: int):
        super().__init__()
        self.query = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.key = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        q = self.query(x).float().flatten(2)  # (B, C/8, N)
        k = self.key(x).float().flatten(2)
        v = self.value(x).float().flatten(2)  # (B, C, N)
        attn = torch.bmm(q.transpose(1, 2), k).softmax(dim=-1)  # (B, N, N), row p attends to all q
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)
        return (self.gamma * out + x.float()).to(x.dtype), attn


CONTEXTS: Registry[nn.Module] = Registry("context")


class ContextualRefinementModule(nn.Module):
    """CRM: aggregate stages → channel attention → spatial attention → 3×3 conv.

    Input [F1..F4] with channels `in_channels`; F1..F3 are average-pooled to F4's size and
    concatenated with F4 (`stages=(0,1,2,3)`; `crm_f4` uses `stages=(3,)`). Output (B, C, h4, w4).
    """

    def __init__(self, in_channels: tuple[int, ...], out_channels: int, stages: tuple[int, ...] = (0, 1, 2, 3)):
        super().__init__()
        self.stages = stages
        self.aggregate = conv_bn_relu(sum(in_channels[i] for i in stages), out_channels, k=1)
        self.channel_attention = ChannelAttention()
        self.spatial_attention = SpatialAttention(out_channels)
        self.out = conv_bn_relu(out_channels, out_channels)

    def attend(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Channel then spatial attention on the aggregated map: (B, C, h, w) → same, A_c, A_s."""
        e, a_c = self.channel_attention(x)
        y, a_s = self.spatial_attention(e)
        return y, a_c, a_s

    def forward(self, feats: list[Tensor]) -> tuple[Tensor, CRMIntermediates]:
        size = feats[3].shape[-2:]
        parts = [feats[i] if i == 3 else F.adaptive_avg_pool2d(feats[i], size) for i in self.stages]
        x = self.aggregate(torch.cat(parts, dim=1))
        y, a_c, a_s = self.attend(x)
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

    def forward(self, feats: list[Tensor]) -> tuple[Tensor, None]:
        f4 = feats[3]
        pooled = [F.interpolate(br(f4), size=f4.shape[-2:], mode="bilinear", align_corners=False) for br in self.branches]
        return self.out(torch.cat([f4, *pooled], dim=1)), None


class NoContext(nn.Module):
    """`context=none`: a 1×1 projection of F4 to the decoder width."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int):
        super().__init__()
        self.proj = conv_bn_relu(in_channels[3], out_channels, k=1)

    def forward(self, feats: list[Tensor]) -> tuple[Tensor, None]:
        return self.proj(feats[3]), None


CONTEXTS.register("crm")(lambda cin, cout: ContextualRefinementModule(cin, cout, (0, 1, 2, 3)))
CONTEXTS.register("crm_f4")(lambda cin, cout: ContextualRefinementModule(cin, cout, (3,)))
CONTEXTS.register("ppm")(PyramidPooling)
CONTEXTS.register("none")(NoContext)
