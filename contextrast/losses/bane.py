"""BANE — boundary-aware negative sampling (METHOD.md §2 "BANE").

Per image and per predicted class n, the error map B^n holds the pixels predicted as n whose ground
truth is another non-ignored class (false positives of n). Each error pixel gets its exact Euclidean
distance to the edge of its error region; the pixels in the lowest K_s percent of distances, per
(image, class), are kept as hard negatives of anchor n. Error maps of different classes are
disjoint (a pixel has one prediction), so one (B, h, w) map carries every class's distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from contextrast.losses.edt import BACKGROUND, region_distance


@dataclass
class BaneSelection:
    """error: (B, h, w) bool, pixel in the error map of its predicted class.
    distance: (B, h, w) float, distance to the edge of its error region (0 off errors; inf when the
        image has no pixel outside that class's error map).
    keep: (B, h, w) bool, error pixel in the lowest K_s percent of its (image, predicted class).
    """

    error: Tensor
    distance: Tensor
    keep: Tensor


def lowest_percent(values: Tensor, groups: Tensor, num_groups: int, percent: float) -> Tensor:
    """values (M,) float, groups (M,) long in [0, num_groups) → (M,) bool: value ≤ the group's
    `percent`-th percentile (numpy's default 'linear' percentile; since every value lies at or
    below the lower neighbour of the interpolation point or above it, this is value ≤ v[⌊(n−1)·q⌋])."""
    if values.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=values.device)
    order = torch.argsort(values, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]  # sorted by (group, value)
    counts = torch.bincount(groups, minlength=num_groups)
    start = torch.cumsum(counts, 0) - counts
    q = float(percent) / 100.0
    kth = torch.floor((counts - 1).clamp(min=0).double() * q).long()  # numpy: (n − 1)·q, floored
    threshold = values[order][(start + kth).clamp(max=values.numel() - 1)]
    return values <= threshold[groups]


def bane_negatives(prediction: Tensor, labels: Tensor, percent: float, ignore_index: int = 255) -> BaneSelection:
    """BANE on one layer's grid.

    prediction: (B, h, w) long, the detached argmax downsampled (nearest) to the layer (Ŷ_i).
    labels: (B, h, w) long ground truth downsampled the same way, `ignore_index` = void.
    percent: K_s in (0, 100] (METHOD.md default 50).
    Runs on the tensors' device; no loops over pixels, images or classes.
    """
    if prediction.dim() != 3 or prediction.shape != labels.shape:
        raise ValueError(
            f"prediction and labels must both be (B, h, w) of one shape; got {tuple(prediction.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if not 0.0 < float(percent) <= 100.0:
        raise ValueError(f"percent (K_s) must lie in (0, 100]; got {percent}")
    prediction, labels = prediction.long(), labels.long()
    error = (labels != ignore_index) & (prediction != labels)
    distance = region_distance(torch.where(error, prediction, BACKGROUND))
    b, h, w = error.shape
    flat = error.flatten().nonzero().squeeze(1)
    keep = torch.zeros(b * h * w, dtype=torch.bool, device=error.device)
    if flat.numel() > 0:
        classes = int(prediction.max()) + 1
        groups = (flat // (h * w)) * classes + prediction.flatten()[flat]
        keep[flat] = lowest_percent(distance.flatten()[flat], groups, b * classes, percent)
    return BaneSelection(error=error, distance=distance, keep=keep.view(b, h, w))
