from __future__ import annotations

from torch import nn

from contextrast.registry import Registry

BACKBONES: Registry[nn.Module] = Registry("backbone")
