"""Heads: the segmentation head over the four decoder levels, the auxiliary FCN head, and the
Contextrast projection heads (METHOD.md §1 "Head", §2 "Embeddings")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contextrast.models.layers import conv_bn_relu


class SegmentationHead(nn.Module):
    """Decoder levels P1..P4 (each (B, C, ·, ·)) → upsample to P1's size, concat, 3×3 conv, 1×1 classifier."""

    def __init__(self, channels: int, num_classes: int, levels: int = 4):
        super().__init__()
        self.fuse = conv_bn_relu(channels * levels, channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, levels: list[Tensor]) -> Tensor:
        size = levels[0].shape[-2:]
        ups = [levels[0]] + [F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in levels[1:]]
        return self.classifier(self.fuse(torch.cat(ups, dim=1)))


class AuxHead(nn.Module):
    """FCN auxiliary head on F3 (stride 16), trained with CE at weight `LossConfig.aux_weight`."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(in_channels, max(in_channels // 2, 16)), nn.Dropout2d(0.1))
        self.classifier = nn.Conv2d(max(in_channels // 2, 16), num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.body(x))


class ProjectionHead(nn.Module):
    """conv1×1(c→c) → BN → ReLU → conv1×1(c→d), L2-normalised over channels: (B, c, h, w) → (B, d, h, w)."""

    def __init__(self, in_channels: int, embed_dim: int = 256):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(in_channels, in_channels, k=1), nn.Conv2d(in_channels, embed_dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.body(x).float(), dim=1)
