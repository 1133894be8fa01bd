"""Putting labels and predictions on each layer's grid (METHOD.md §2: "Y_i = ground truth nearest-downsampled"),
read where the layer's features sit: position o of a stride-s map at input pixel s·o (`contextrast.pixel_grid`)."""

from __future__ import annotations

import torch
from torch import Tensor

from contextrast.pixel_grid import sample_indices


def nearest_indices(size_in: int, size_out: int, device: torch.device) -> Tensor:
    """The source index of every output position: o ↦ min(s·o, size_in − 1), s the stride ratio
    (`pixel_grid.sample_indices`)."""
    return sample_indices(size_in, size_out, device)


def nearest_resize(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, H, W) integer map → (B, h, w) long, each position reading the input pixel its feature sits on."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels.long()
    rows = nearest_indices(labels.shape[-2], size[0], labels.device)
    cols = nearest_indices(labels.shape[-1], size[1], labels.device)
    return labels[:, rows[:, None], cols[None, :]].long()


def prediction_at(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """argmax(logits).detach() nearest-downsampled to `size`: (B, K, H, W) → (B, h, w) long.

    Picks the logits of the pixels nearest sampling keeps, then takes the argmax there: the same
    labels as argmax-then-resize, without an argmax over the full-resolution map (slow on CPU)."""
    logits = logits.detach()
    if tuple(logits.shape[-2:]) != tuple(size):
        rows = nearest_indices(logits.shape[-2], size[0], logits.device)
        cols = nearest_indices(logits.shape[-1], size[1], logits.device)
        logits = logits[:, :, rows[:, None], cols[None, :]]
    return logits.argmax(1)


def flat_to_coords(index: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Flat pixel indices into a (B, h, w) grid → (image, y, x)."""
    h, w = size
    return index // (h * w), (index % (h * w)) // w, index % w


def gather_pixels(features: Tensor, index: Tensor) -> Tensor:
    """features (B, D, h, w), index (...) flat into (B, h, w) → (..., D), without a channels-last copy."""
    b, d, h, w = features.shape
    flat = features.reshape(b, d, h * w)
    return flat[index // (h * w), :, index % (h * w)]


def similarity_to(anchors: Tensor, features: Tensor) -> Tensor:
    """anchors (K, D), features (B, D, h, w) or (B, D, h·w) → (K, B·h·w) fp32 dot products, columns in flat
    (b, y, x) order.

    One dense matmul over every pixel: on CPU it beats gathering the sampled pixels (strided gathers and
    scatters in backward), and it stays deterministic on CUDA (no atomic index_put). An explicit `bmm` (not a
    broadcasting `matmul`, which folds the batch into a transposed mm) so the features' gradient is a
    contiguous (B, D, N) like the features themselves."""
    b, d = features.shape[:2]
    anchors = anchors.float()
    flat = features if features.dim() == 3 else features.reshape(b, d, -1)
    sims = torch.bmm(anchors.expand(b, *anchors.shape), flat.float())  # (B, K, N)
    return sims.transpose(0, 1).reshape(anchors.shape[0], -1)


def one_hot_bkn(labels: Tensor, num_classes: int) -> Tensor:
    """(B, N) labels with out-of-range (ignore) values → (B, K, N) float one-hot, all-zero for ignored pixels."""
    valid = (labels >= 0) & (labels < num_classes)
    idx = torch.where(valid, labels, num_classes)
    out = torch.zeros(labels.shape[0], num_classes + 1, labels.shape[1], device=labels.device)
    out.scatter_(1, idx[:, None], 1.0)
    return out[:, :num_classes]
