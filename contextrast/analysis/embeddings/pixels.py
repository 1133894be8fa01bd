"""Point ↔ pixel: the image pixel each grid cell is read from (nearest downsampling,
`contextrast.losses.grid.nearest_indices`), the cell a clicked pixel falls in, and the sampled point there.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from contextrast.analysis.embeddings.sampling import PixelSample
from contextrast.losses.grid import nearest_indices


def source_rows_cols(size: tuple[int, int], grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For a grid (h, w) read from an image (H, W) by nearest downsampling: the image row of every grid
    row (h,) and the image column of every grid column (w,) — the cells' source pixels."""
    rows = nearest_indices(size[0], grid[0], torch.device("cpu")).numpy()
    cols = nearest_indices(size[1], grid[1], torch.device("cpu")).numpy()
    return rows, cols


def pixel_of_point(sample: PixelSample, point: int) -> tuple[int, int, int]:
    """Point index → (image, y, x): the image pixel nearest downsampling reads for the point's cell."""
    if not 0 <= int(point) < len(sample):
        raise ValueError(f"point must be 0..{len(sample) - 1}; got {point}")
    i = int(sample.image[point])
    rows, cols = source_rows_cols(sample.sizes[i], sample.grids[i])
    return i, int(rows[sample.gy[point]]), int(cols[sample.gx[point]])


def cell_of_pixel(size: tuple[int, int], grid: tuple[int, int], y: float, x: float) -> tuple[int, int]:
    """Image pixel (y, x) → the grid cell whose block of pixels holds it (the cell whose source pixel is the
    last one at or before it in each axis), so `cell_of_pixel(pixel_of_point(p)) == p`'s cell."""
    H, W = size
    if not (0 <= y < H and 0 <= x < W):
        raise ValueError(f"pixel (y={y}, x={x}) lies outside the {W}×{H} image")
    rows, cols = source_rows_cols(size, grid)
    return int(np.searchsorted(rows, int(y), side="right") - 1), int(np.searchsorted(cols, int(x), side="right") - 1)


@dataclass
class PixelHit:
    point: int  # the sampled point chosen
    exact: bool  # True when the clicked pixel's own cell was sampled; else the nearest sampled cell of that image
    cell: tuple[int, int]


def point_at_pixel(sample: PixelSample, image: int, y: float, x: float) -> PixelHit:
    """Image pixel → the sampled point of its cell, or the nearest sampled cell of the same image."""
    if not 0 <= int(image) < len(sample.sizes):
        raise ValueError(f"image must be 0..{len(sample.sizes) - 1}; got {image}")
    gy, gx = cell_of_pixel(sample.sizes[image], sample.grids[image], y, x)
    mine = np.flatnonzero(sample.image == image)
    if mine.size == 0:
        raise ValueError(f"no point of the sample comes from image {image}")
    d2 = (sample.gy[mine] - gy) ** 2 + (sample.gx[mine] - gx) ** 2
    best = int(mine[int(np.argmin(d2))])
    return PixelHit(best, bool(d2.min() == 0), (gy, gx))


def locate_pixel(rgb: np.ndarray, y: int, x: int, grid: tuple[int, int]) -> np.ndarray:
    """The image with the picked pixel's grid cell outlined and a cross-hair through the pixel."""
    H, W = rgb.shape[:2]
    rows, cols = source_rows_cols((H, W), grid)
    gy, gx = cell_of_pixel((H, W), grid, y, x)
    y0, x0 = int(rows[gy]), int(cols[gx])
    y1 = int(rows[gy + 1]) - 1 if gy + 1 < len(rows) else H - 1
    x1 = int(cols[gx + 1]) - 1 if gx + 1 < len(cols) else W - 1
    out = (rgb.astype(np.float32) * 0.6).astype(np.uint8)
    out[y0:y1 + 1, x0:x1 + 1] = rgb[y0:y1 + 1, x0:x1 + 1]
    thick = max(1, min(H, W) // 160)
    cv2.line(out, (0, y), (W - 1, y), (255, 255, 0), thick)
    cv2.line(out, (x, 0), (x, H - 1), (255, 255, 0), thick)
    cv2.rectangle(out, (x0, y0), (x1, y1), (255, 40, 40), thick)
    return out


def light_up(rgb: np.ndarray, sample: PixelSample, points: np.ndarray, image: int) -> np.ndarray:
    """The image dimmed, with the grid cells of the selected `points` that come from image `image` at full
    brightness and outlined: where a box or lasso selection of the scatter lies on the picture."""
    H, W = rgb.shape[:2]
    points = np.asarray(points, np.int64)
    mine = points[sample.image[points] == image] if points.size else points
    rows, cols = source_rows_cols((H, W), sample.grids[image])
    lit = np.zeros((H, W), bool)
    ends_r, ends_c = np.r_[rows[1:], H], np.r_[cols[1:], W]
    for gy, gx in zip(sample.gy[mine].tolist(), sample.gx[mine].tolist()):
        lit[rows[gy]:ends_r[gy], cols[gx]:ends_c[gx]] = True
    out = (rgb.astype(np.float32) * 0.3).astype(np.uint8)
    out[lit] = rgb[lit]
    contours, _ = cv2.findContours(lit.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 235, 60), max(1, min(H, W) // 200))
    return out
