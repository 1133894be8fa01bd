"""What a loss did, for the app to draw (METHOD.md §2: "Every sampler returns which pixels it chose").

Built only when a loss is called with `record=True`; otherwise no record work is done.
Coordinates are on each layer's own grid (layer i has stride 4·2^i for the encoder layers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

POSITIVE = 0
BANE_NEGATIVE = 1
RANDOM_NEGATIVE = 2
ANCHOR_SAMPLE = 3  # pixel_contrast: a sampled anchor pixel (it is also contrasted as a view)
ROLE_NAMES = {POSITIVE: "positive", BANE_NEGATIVE: "BANE negative", RANDOM_NEGATIVE: "random negative", ANCHOR_SAMPLE: "anchor pixel"}


@dataclass
class SampledPixels:
    """M sampled pixels of one layer, all tensors (M,) on the CPU.

    cls: the anchor class the sample was drawn for (a negative of class n is a pixel of another class).
    role: POSITIVE | BANE_NEGATIVE | RANDOM_NEGATIVE | ANCHOR_SAMPLE.
    distance: distance to the edge of its error region (BANE negatives), NaN for other roles.
    """

    image: Tensor
    y: Tensor
    x: Tensor
    cls: Tensor
    role: Tensor
    distance: Tensor

    @staticmethod
    def empty() -> SampledPixels:
        z = torch.zeros(0, dtype=torch.long)
        return SampledPixels(z, z, z, z, z.to(torch.uint8), torch.zeros(0))

    def __len__(self) -> int:
        return int(self.image.numel())


@dataclass
class LayerRecord:
    """One encoder layer's part of the contrastive loss.

    layer: 0..3.  grid: (h, w) of this layer.
    labels: (B, h, w) ground truth nearest-downsampled to the layer (255 = ignore).
    prediction: (B, h, w) the detached prediction downsampled to the layer (BANE's Ŷ_i).
    error_distance: (B, h, w) float: inside an error region (predicted n, ground truth another
        valid class) the exact Euclidean distance to its edge; 0 elsewhere. None when unused.
    anchors_raw / anchors: class → (D,) anchor before / after the contextual update.
    class_loss: class → L_i(n) (unweighted by λ_i).
    loss: the layer's loss (mean of class_loss over present classes, unweighted by λ_i); NaN if unknown.
    """

    layer: int
    grid: tuple[int, int]
    labels: Tensor
    prediction: Tensor | None
    error_distance: Tensor | None
    anchors_raw: dict[int, Tensor] = field(default_factory=dict)
    anchors: dict[int, Tensor] = field(default_factory=dict)
    samples: SampledPixels = field(default_factory=SampledPixels.empty)
    class_loss: dict[int, float] = field(default_factory=dict)
    loss: float = float("nan")


@dataclass
class LossRecord:
    """The record of one loss call: per-layer records and the scalar terms (e.g. ce, ccl, total)."""

    loss: str
    layers: list[LayerRecord] = field(default_factory=list)
    terms: dict[str, float] = field(default_factory=dict)
