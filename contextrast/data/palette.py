"""Label maps → colour pictures, and a default palette for label sets that bring none."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from contextrast.config import IGNORE_INDEX


def colorize(mask: np.ndarray | torch.Tensor, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) integer labels → (H, W, 3) uint8 RGB; 255 (ignore) and labels without a colour are black."""
    labels = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if labels.ndim != 2:
        raise ValueError(f"colorize expects a (H, W) label map; got shape {labels.shape}")
    table = np.zeros((max(IGNORE_INDEX + 1, len(palette)), 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8).reshape(-1, 3)
    table[IGNORE_INDEX] = 0
    labels = labels.astype(np.int64)
    outside = (labels < 0) | (labels >= len(table))
    return np.where(outside[..., None], np.uint8(0), table[np.clip(labels, 0, len(table) - 1)])


def default_palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map (bit-interleaved label index), used when a label set gives no colours."""
    colours = []
    for label in range(num_classes):
        r = g = b = 0
        value = label
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colours.append((r, g, b))
    return tuple(colours)
