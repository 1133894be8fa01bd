"""Representative anchors and the contextual update (METHOD.md §2 "Representative anchors")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from contextrast.losses.grid import one_hot_bkn


def class_means(embeddings: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Batch-wide mean embedding per class: a_i^n (no memory bank, no EMA).

    embeddings (B, D, h, w) or already flattened (B, D, h·w), labels (B, h, w) with ignore values outside [0, K).
    Returns means (K, D) (zero rows for absent classes) and counts (K,) long.
    """
    b, d = embeddings.shape[:2]
    onehot = one_hot_bkn(labels.reshape(b, -1), num_classes)  # (B, K, N)
    flat = embeddings if embeddings.dim() == 3 else embeddings.reshape(b, d, -1)
    # (B, D, N) @ (B, N, K): BLAS, deterministic, and the gradient comes back as a contiguous (B, D, N), the
    # layout of the embeddings, so the projection head's backward runs on matching strides (no slow mixed-layout
    # elementwise ops, no transposing copies).
    sums = torch.bmm(flat.float(), onehot.transpose(1, 2)).sum(0).t()  # (K, D)
    counts = onehot.sum((0, 2))
    means = sums / counts.clamp(min=1)[:, None]
    return means, counts.round().long()


def contextual_update(anchors: Tensor, present: Tensor, deep: Tensor, deep_present: Tensor, w_h: float) -> Tensor:
    """â_i^n = w_l·a_i^n + w_h·a_I^n where class n is present at layer i and at the deepest layer I,
    else a_i^n; w_l = 1 − w_h; then L2-normalised (METHOD.md §2 [paper]/[choice]).

    anchors, deep: (K, D) raw means; present, deep_present: (K,) bool. Returns (K, D); absent rows stay 0.
    """
    both = (present & deep_present)[:, None]
    mixed = torch.where(both, (1.0 - w_h) * anchors + w_h * deep, anchors)
    return F.normalize(mixed, dim=1)
