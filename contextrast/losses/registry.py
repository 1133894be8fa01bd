"""The losses' registries (METHOD.md §2): `LOSSES` (the training loss, `loss.name`) and `NEGATIVES` (how CCL
draws the negatives of an anchor, `loss.negatives`). Filled by the modules that define them when
`contextrast.losses` is imported."""

from __future__ import annotations

from torch import nn

from contextrast.registry import Registry

LOSSES: Registry[nn.Module] = Registry("loss")
NEGATIVES: Registry[object] = Registry("negatives")
