"""Heads: the segmentation head over the four decoder levels, the auxiliary FCN head, and the
Contextrast projection heads (METHOD.md §1 "Head", §2 "Embeddings")."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from contextrast.models.layers import conv_bn_relu
from contextrast.pixel_grid import upsample


class SegmentationHead(nn.Module):
    """Decoder levels P1..P4 (each (B, C, ·, ·)) → upsample to P1's size, concat, 3×3 conv, 1×1 classifier."""

    def __init__(self, channels: int, num_classes: int, levels: int = 4, grid: str = "centred"):
        super().__init__()
        self.grid = grid
        self.fuse = conv_bn_relu(channels * levels, channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, levels: list[Tensor]) -> Tensor:
        size = tuple(levels[0].shape[-2:])
        ups = [levels[0]] + [upsample(p, size, self.grid) for p in levels[1:]]
        return self.classifier(self.fuse(torch.cat(ups, dim=1)))


class AuxHead(nn.Module):
    """FCN auxiliary head on F3 (stride 16), trained with CE at weight `LossConfig.aux_weight`."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(in_channels, max(in_channels // 2, 16)), nn.Dropout2d(0.1))
        self.classifier = nn.Conv2d(max(in_channels // 2, 16), num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.body(x))


class _ChannelL2Normalize(torch.autograd.Function):
    """`F.normalize(z, dim=1, eps)` for (B, D, h, w) with a hand-written backward that allocates one full-size
    tensor (the gradient) instead of the half-dozen temporaries of the autograd chain (div, neg, mul, norm
    backward): on CPU every full-resolution temporary is a fresh page-faulting allocation, and this op sits on
    the largest embedding map (METHOD.md §2 "Embeddings"). Same values; gradients equal up to float rounding:
    ∂L/∂z = (g − y·⟨g, y⟩_c) / max(‖z‖, eps), the ⟨g, y⟩ term dropped where the norm is clamped to eps."""

    @staticmethod
    def forward(ctx, z: Tensor, eps: float) -> Tensor:
        denom = torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min_(eps)  # (B, 1, h, w)
        y = z / denom
        ctx.save_for_backward(y, denom)
        ctx.eps = eps
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        y, denom = ctx.saved_tensors
        # ⟨g, y⟩ over channels one image at a time, so the product temporary is one image's size, not the batch's
        dot = torch.stack([(g * yi).sum(0, keepdim=True) for g, yi in zip(grad, y)])  # (B, 1, h, w)
        dot.masked_fill_(denom <= ctx.eps, 0.0)  # clamped norm: the denominator is a constant there
        return torch.addcmul(grad, y, dot, value=-1.0).div_(denom), None


class ProjectionHead(nn.Module):
    """conv1×1(c→c) → BN → ReLU → conv1×1(c→d), L2-normalised over channels: (B, c, h, w) → (B, d, h, w)."""

    def __init__(self, in_channels: int, embed_dim: int = 256):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(in_channels, in_channels, k=1), nn.Conv2d(in_channels, embed_dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        return _ChannelL2Normalize.apply(self.body(x).float(), 1e-12)  # = F.normalize(·, dim=1), leaner backward
