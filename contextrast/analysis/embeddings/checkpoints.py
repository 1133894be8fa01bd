"""One or two checkpoints on the same pixels: the forward passes of every (checkpoint, image), the first
checkpoint's class-balanced sample and the same cells read from the second (METHOD.md §2 "Embeddings")."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from contextrast.analysis.embeddings.sampling import PixelSample, layer_pixels, same_pixels, sample_pixels
from contextrast.analysis.forward import ModelRun
from contextrast.config import LossConfig


def sample_checkpoints(forward: Callable[[int, int], ModelRun], checkpoints: int, labels: Sequence[np.ndarray | None],
                       layer: int, n: int, seed: int, num_classes: int,
                       losses: Sequence[LossConfig | None] | None = None,
                       progress: Callable[[int, int], None] | None = None) -> list[PixelSample]:
    """`forward(j, i)` is checkpoint j's analysis run on image i (i < len(labels)); `losses[j]` its training loss.
    Returns one `PixelSample` per checkpoint: the first is class-balanced, the others read the same cells."""
    losses = list(losses) if losses is not None else [None] * checkpoints
    samples: list[PixelSample] = []
    total, done = checkpoints * len(labels), 0
    for j in range(checkpoints):
        pixels = []
        for i, truth in enumerate(labels):
            pixels.append(layer_pixels(forward(j, i), layer, truth))
            done += 1
            if progress is not None:
                progress(done, total)
        if j == 0:
            samples.append(sample_pixels(pixels, layer, n, seed, num_classes, loss=losses[0]))
        else:
            samples.append(same_pixels(samples[0], pixels, losses[j], seed))
    return samples


def sample_summary(sample: PixelSample, images: int, layer_name: str, asked: int) -> str:
    """What the points are, in one line: how many, of what, and how they were drawn."""
    if sample.available <= asked:
        return (f"all {len(sample)} labelled pixels of {images} image(s) at {layer_name} (fewer than the {asked} asked "
                "for, so no balancing was needed)" if sample.balanced_by == "ground truth" else
                f"all {len(sample)} pixels of {images} image(s) at {layer_name} (fewer than the {asked} asked for)")
    return (f"{len(sample)} of {sample.available} pixels of {images} image(s) at {layer_name}, class-balanced by "
            f"{sample.balanced_by}")
