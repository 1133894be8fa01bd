"""`build_loss(cfg, num_classes)`: the loss named by `cfg.name`, from the `LOSSES` registry (METHOD.md §2)."""

from __future__ import annotations

from typing import Any

from torch import nn

from contextrast.config import IGNORE_INDEX, LossConfig, from_dict
from contextrast.losses import ccl, ce, pixel_contrast  # noqa: F401  (imported for their LOSSES registrations)
from contextrast.losses.base import LOSSES


def build_loss(cfg: LossConfig | dict[str, Any], num_classes: int, ignore_index: int = IGNORE_INDEX) -> nn.Module:
    """The training loss `cfg.name` ∈ ce | pixel_contrast | ccl | contextrast, for `num_classes` classes.

    The module is called as `loss_fn(model_out, target, progress=1.0, record=False)` → `LossOutput`;
    `loss_fn.needs_embeddings` says whether the model must be run with `return_embeddings=True`.
    """
    if isinstance(cfg, dict):
        cfg = from_dict(LossConfig, cfg)
    return LOSSES.get(cfg.name)(cfg, num_classes, ignore_index)
