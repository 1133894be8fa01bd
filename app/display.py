"""Pictures as the page shows them. Gradio never draws an image larger than its natural size, so a 160×128 toy
picture would stay a thumbnail in a 340 px panel: small pictures are enlarged by a whole factor with
nearest-neighbour repetition (every source pixel becomes a crisp k×k block, no blur, no new colours).

Only what goes to an image component is enlarged; analysis results stay at their own size. A click on an
enlarged picture (Gradio's `SelectData.index`, in the shown picture's pixels) maps back with `to_source`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from contextrast.analysis.colormaps import Scale, with_colour_bar

MIN_LONG_SIDE = 480  # px: about the width of a half-page panel


def display_factor(shape: Sequence[int], min_long_side: int = MIN_LONG_SIDE) -> int:
    """The whole factor k ≥ 1 that brings the longer of an (H, W, …) picture's sides to at least `min_long_side`."""
    if len(shape) < 2 or min(shape[:2]) < 1:
        raise ValueError(f"a picture has shape (H, W) or (H, W, C) with H, W ≥ 1; got {tuple(shape)}")
    return max(1, math.ceil(min_long_side / max(shape[:2])))


def enlarge(image: np.ndarray | None, min_long_side: int = MIN_LONG_SIDE) -> np.ndarray | None:
    """(H, W[, C]) → (k·H, k·W[, C]) with k = `display_factor`; None (an empty panel) stays None."""
    if image is None:
        return None
    k = display_factor(image.shape, min_long_side)
    if k == 1:
        return image
    return np.repeat(np.repeat(image, k, axis=0), k, axis=1)


def to_source(index: Sequence[float], source_shape: Sequence[int], min_long_side: int = MIN_LONG_SIDE
              ) -> tuple[int, int]:
    """A click's [x, y] on the enlarged picture of a (H, W, …) source → the source pixel (x, y)."""
    k = display_factor(source_shape, min_long_side)
    x, y = (int(float(v) // k) for v in index[:2])
    return min(x, source_shape[1] - 1), min(y, source_shape[0] - 1)


def with_scale(picture: np.ndarray | None, scale: Scale | None) -> np.ndarray | None:
    """The picture as shown (enlarged), with the colour bar of `scale` on its right when given."""
    big = enlarge(picture)
    return big if big is None or scale is None else with_colour_bar(big, scale)
