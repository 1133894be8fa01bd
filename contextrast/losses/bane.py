"""BANE — boundary-aware negative sampling (METHOD.md §2 "BANE", §4 revisions).

Per image and per predicted class n, the error map B^n holds the pixels predicted as n whose ground truth is
another non-ignored class (false positives of n). Each error pixel gets its Euclidean distance to the edge of its
error region, and the K_s % of error pixels nearest the edge, per (image, class), are the hard negatives of anchor n.
Error maps of different classes are disjoint (a pixel has one prediction), so one (B, h, w) map carries every
class's distances.

Two switches (`LossConfig`): where distances are measured (`bane_distance_stride`: on a finer grid than the
layers, where they are nearly tie-free, carried to each layer's pixels; or 0, each layer's own grid) and how
K_s selects (`bane_rule`): `rank` keeps the K_s % lowest by (distance, seeded random tie-break), with the
fractional part of K_s·n drawn at random so that the kept share is K_s in expectation even for tiny regions;
`percentile` keeps every value ≤ the K_s-th percentile (ties at distance 1 then keep nearly everything).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from contextrast.config import LossConfig
from contextrast.losses.edt import BACKGROUND, region_distance
from contextrast.losses.grid import nearest_resize, prediction_at
from contextrast.pixel_grid import stride_between


@dataclass
class BaneSelection:
    """error: (B, h, w) bool, pixel in the error map of its predicted class.
    distance: (B, h, w) float, distance to the edge of its error region in pixels of this grid (0 off errors; inf
        when the image has no pixel outside that class's error map).
    keep: (B, h, w) bool, error pixel among the K_s % nearest the edge of its (image, predicted class).
    """

    error: Tensor
    distance: Tensor
    keep: Tensor


def error_map(prediction: Tensor, labels: Tensor, ignore_index: int = 255) -> Tensor:
    """(B, h, w) bool: predicted class ≠ ground truth, ground truth not ignored (false positives of the prediction)."""
    return (labels != ignore_index) & (prediction != labels)


def error_distance(prediction: Tensor, labels: Tensor, ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """Error map and exact Euclidean distance of each error pixel to the edge of its region (per predicted class).
    prediction, labels (B, h, w) long → (error (B, h, w) bool, distance (B, h, w) float32)."""
    error = error_map(prediction, labels, ignore_index)
    return error, region_distance(torch.where(error, prediction, BACKGROUND))


def carry_distance(fine: Tensor, size: tuple[int, int]) -> Tensor:
    """Distances measured on a finer grid (B, H', W'), read at a coarser grid's pixels (pixel o of a grid s times
    coarser sits on fine pixel s·o) and expressed in that grid's pixels: (B, h, w) float, sub-pixel valued."""
    sy, sx = stride_between(fine.shape[-2], size[0]), stride_between(fine.shape[-1], size[1])
    rows = (torch.arange(size[0], device=fine.device) * sy).clamp_(max=fine.shape[-2] - 1)
    cols = (torch.arange(size[1], device=fine.device) * sx).clamp_(max=fine.shape[-1] - 1)
    return fine[:, rows[:, None], cols[None, :]] / float(max(sy, sx))


def lowest_percent(values: Tensor, groups: Tensor, num_groups: int, percent: float) -> Tensor:
    """The `percentile` rule. values (M,) float, groups (M,) long in [0, num_groups) → (M,) bool: value ≤ the
    group's `percent`-th percentile (numpy's default 'linear' percentile; since every value lies at or below the
    lower neighbour of the interpolation point or above it, this is value ≤ v[⌊(n−1)·q⌋])."""
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


def lowest_share(values: Tensor, groups: Tensor, num_groups: int, percent: float, generator: torch.Generator) -> Tensor:
    """The `rank` rule. values (M,) float, groups (M,) long → (M,) bool: in each group of n elements, the
    ⌊q·n + u⌋ lowest by (value, random key), u ~ U(0, 1) per group, q = percent/100: a selection of q·n elements
    in expectation, ties broken uniformly at random under `generator`."""
    m = values.numel()
    if m == 0:
        return torch.zeros(0, dtype=torch.bool, device=values.device)
    keys = torch.rand(m, generator=generator, device=values.device)
    order = torch.argsort(keys)
    order = order[torch.argsort(values[order], stable=True)]
    order = order[torch.argsort(groups[order], stable=True)]  # sorted by (group, value, random key)
    counts = torch.bincount(groups, minlength=num_groups)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(groups)
    rank[order] = torch.arange(m, device=values.device) - start[groups[order]]
    u = torch.rand(num_groups, generator=generator, device=values.device)
    quota = torch.floor(counts.double() * (float(percent) / 100.0) + u.double()).long()
    return rank < quota[groups]


def bane_negatives(
    prediction: Tensor,
    labels: Tensor,
    percent: float,
    ignore_index: int = 255,
    *,
    rule: str = "percentile",
    generator: torch.Generator | None = None,
    distance: Tensor | None = None,
) -> BaneSelection:
    """BANE on one layer's grid.

    prediction: (B, h, w) long, the detached argmax read at the layer's pixels (Ŷ_i).
    labels: (B, h, w) long ground truth read the same way, `ignore_index` = void.
    percent: K_s in (0, 100] (METHOD.md default 50). rule: `rank` | `percentile` (module docstring).
    distance: (B, h, w) distances measured on a finer grid and carried here (`carry_distance`); default: the exact
        distance transform on this grid. generator: seeds the `rank` rule's tie-breaks.
    Runs on the tensors' device; no loops over pixels, images or classes.
    """
    if prediction.dim() != 3 or prediction.shape != labels.shape:
        raise ValueError(
            f"prediction and labels must both be (B, h, w) of one shape; got {tuple(prediction.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if not 0.0 < float(percent) <= 100.0:
        raise ValueError(f"percent (K_s) must lie in (0, 100]; got {percent}")
    if rule not in ("rank", "percentile"):
        raise ValueError(f"rule must be rank or percentile; got {rule!r}")
    prediction, labels = prediction.long(), labels.long()
    if distance is None:
        error, distance = error_distance(prediction, labels, ignore_index)
    else:
        error = error_map(prediction, labels, ignore_index)
        distance = torch.where(error, distance, torch.zeros((), device=distance.device))
    b, h, w = error.shape
    flat = error.flatten().nonzero().squeeze(1)
    keep = torch.zeros(b * h * w, dtype=torch.bool, device=error.device)
    if flat.numel() > 0:
        classes = int(prediction.max()) + 1
        groups = (flat // (h * w)) * classes + prediction.flatten()[flat]
        values = distance.flatten()[flat]
        if rule == "rank":
            if generator is None:
                generator = torch.Generator(device=error.device).manual_seed(0)
            keep[flat] = lowest_share(values, groups, b * classes, percent, generator)
        else:
            keep[flat] = lowest_percent(values, groups, b * classes, percent)
    return BaneSelection(error=error, distance=distance, keep=keep.view(b, h, w))


def fine_error_distance(logits: Tensor, target: Tensor, stride: int, ignore_index: int = 255) -> Tensor | None:
    """BANE's distances on the stride-`stride` grid: logits (B, K, H, W), target (B, H, W) → (B, ⌈H/s⌉, ⌈W/s⌉), or
    None for stride 0 (each layer's own grid). One transform serves every layer (`carry_distance`)."""
    if int(stride) == 0:
        return None
    size = (-(-target.shape[-2] // stride), -(-target.shape[-1] // stride))
    _, distance = error_distance(prediction_at(logits, size), nearest_resize(target, size), ignore_index)
    return distance


def bane_on_grid(
    logits: Tensor,
    labels: Tensor,
    cfg: LossConfig,
    generator: torch.Generator,
    fine_distance: Tensor | None,
    ignore_index: int = 255,
    percent: float | None = None,
) -> tuple[Tensor, BaneSelection]:
    """BANE on one layer with the loss's settings: logits (B, K, H, W), labels (B, h, w) already on the layer's grid
    → (the prediction read there (B, h, w), the selection). `percent` overrides K_s (the diagnose sweep)."""
    grid = tuple(labels.shape[-2:])
    pred = prediction_at(logits, grid)
    carried = carry_distance(fine_distance, grid) if fine_distance is not None else None
    k_s = cfg.bane_percent if percent is None else percent
    return pred, bane_negatives(pred, labels, k_s, ignore_index, rule=cfg.bane_rule, generator=generator,
                                distance=carried)
