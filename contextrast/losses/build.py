"""`build_loss(cfg, num_classes)`: the loss named by `cfg.name`, from the `LOSSES` registry (METHOD.md §2)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from contextrast.config import IGNORE_INDEX, LossConfig, from_dict

# Import order = registration order = the order help and errors list the losses.
# isort: off
from contextrast.losses import ce, pixel_contrast  # noqa: F401
from contextrast.losses import ccl  # noqa: F401
# isort: on
from contextrast.losses.base import SegmentationLoss
from contextrast.losses.registry import LOSSES


def build_loss(
    cfg: LossConfig | dict[str, Any],
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    seed: int = 0,
    class_weights: Tensor | None = None,
) -> SegmentationLoss:
    """The training loss `cfg.name` (a `LOSSES` name) for `num_classes` classes.

    The module is called as `loss_fn(model_out, target, progress=1.0, record=False)` → `LossOutput`; run the
    model with `return_embeddings=loss_fn.embedding_layers(progress)`. `seed` seeds its sampling;
    `class_weights` (K,) weight the CE terms (`loss.class_weights`, computed from the training split).
    """
    if isinstance(cfg, dict):
        cfg = from_dict(LossConfig, cfg)
    return LOSSES.get(cfg.name)(cfg, num_classes, ignore_index, seed=seed, class_weights=class_weights)
