"""Backbone registry: 4-stage encoders with strides 4/8/16/32 and known channel counts.

`create_backbone("resnet18")`, `create_backbone("timm:convnext_tiny")` (when timm is installed).
Every backbone is an `nn.Module` with `.channels` (4 ints) and `.strides` == (4, 8, 16, 32) whose
forward returns `[F1, F2, F3, F4]` (METHOD.md §1 "Encoder").
"""

from __future__ import annotations

from torch import nn

from contextrast.models.backbones import resnet as _resnet  # noqa: F401  (registers resnets)
from contextrast.models.backbones.base import Backbone
from contextrast.models.backbones.timm_backbone import TimmBackbone
from contextrast.models.registry import BACKBONES


def create_backbone(name: str, in_channels: int = 3) -> nn.Module:
    """Build a backbone by registry name, or `timm:<model name>` for any timm model."""
    if name.startswith("timm:"):
        return TimmBackbone(name.split(":", 1)[1], in_channels=in_channels)
    return BACKBONES.get(name)(in_channels=in_channels)


def backbone_names() -> list[str]:
    return BACKBONES.names() + ["timm:<name>"]


__all__ = ["BACKBONES", "Backbone", "TimmBackbone", "backbone_names", "create_backbone"]
