"""The projected sample drawn: point colours by ground truth, prediction, correct / wrong or BANE role, as an
interactive plotly scatter (`scatter_figure`) or a clickable picture (`scatter_image` + `pick_point`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import plotly.graph_objects as go

from contextrast.analysis.embeddings.pixels import source_rows_cols
from contextrast.analysis.embeddings.projection import Projection
from contextrast.analysis.embeddings.sampling import (
    CORRECT,
    FAR_ERROR,
    HARD,
    LAYER_NAMES,
    UNLABELLED,
    PixelSample,
)
from contextrast.config import IGNORE_INDEX

COLOUR_BY = ("ground truth", "prediction", "correct / wrong", "BANE role")
ROLE_NAMES = {CORRECT: "correct", HARD: "BANE hard negative (error near its edge)",
              FAR_ERROR: "error deep inside its region", UNLABELLED: "unlabelled"}
ROLE_COLOURS = {CORRECT: (160, 160, 160), HARD: (230, 40, 40), FAR_ERROR: (250, 160, 30), UNLABELLED: (90, 90, 220)}
RIGHT_WRONG_COLOURS = {0: (40, 170, 80), 1: (225, 40, 40)}  # 0 = correct, 1 = wrong


def point_colours(sample: PixelSample, colour_by: str, palette: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray,
                                                                                                  dict[int, str]]:
    """Per point: category (N,) int, colour (N, 3) uint8, and category → legend name."""
    if colour_by not in COLOUR_BY:
        raise ValueError(f"colour by must be one of {', '.join(COLOUR_BY)}; got {colour_by!r}")
    if colour_by in ("ground truth", "prediction"):
        cat = sample.truth if colour_by == "ground truth" else sample.prediction
        if colour_by == "ground truth" and sample.balanced_by != "ground truth":
            raise ValueError("this image has no ground truth: colour by prediction, or add a label map")
        table = {c: tuple(palette[c]) if 0 <= c < len(palette) else (0, 0, 0) for c in np.unique(cat).tolist()}
        names = {c: str(c) for c in table}
    elif colour_by == "correct / wrong":
        if sample.balanced_by != "ground truth":
            raise ValueError("correct / wrong needs a ground truth: add a label map or pick a labelled sample")
        cat = (sample.prediction != sample.truth).astype(np.int64)
        table, names = RIGHT_WRONG_COLOURS, {0: "correct", 1: "wrong"}
    else:
        cat = sample.role
        table, names = ROLE_COLOURS, dict(ROLE_NAMES)
    lut = np.zeros((max(table) + 1, 3), np.uint8)
    for c, rgb in table.items():
        lut[c] = rgb
    return cat, lut[cat], {c: names[c] for c in np.unique(cat).tolist()}


def _hex(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def scatter_figure(sample: PixelSample, proj: Projection, colour_by: str, classes: Sequence[str],
                   palette: Sequence[Sequence[int]], highlight: int | None = None, title: str = "") -> go.Figure:
    """Interactive plotly scatter (WebGL): one trace per colour category, hover gives the class, the
    prediction and the source pixel; anchors as black-edged stars; `highlight` ringed."""
    cat, colours, names = point_colours(sample, colour_by, palette)

    def cname(c: int) -> str:
        return classes[c] if 0 <= c < len(classes) else ("unlabelled" if c == IGNORE_INDEX else str(c))

    if colour_by in ("ground truth", "prediction"):
        names = {c: cname(c) for c in names}
    rows_cols = [source_rows_cols(s, g) for s, g in zip(sample.sizes, sample.grids)]
    py = np.array([rows_cols[i][0][y] for i, y in zip(sample.image, sample.gy)])
    px = np.array([rows_cols[i][1][x] for i, x in zip(sample.image, sample.gx)])
    hover = [f"truth: {cname(t)}<br>prediction: {cname(p)}<br>image {i}, pixel x={x}, y={y}"
             for t, p, i, x, y in zip(sample.truth.tolist(), sample.prediction.tolist(), sample.image.tolist(),
                                      px.tolist(), py.tolist())]
    hover_arr = np.array(hover, dtype=object)
    fig = go.Figure()
    for c, name in names.items():
        m = cat == c
        fig.add_trace(go.Scattergl(x=proj.coords[m, 0], y=proj.coords[m, 1], mode="markers", name=f"{name} ({m.sum()})",
                                   marker=dict(size=4, color=_hex(colours[m][0]), opacity=0.8),
                                   customdata=np.flatnonzero(m), text=hover_arr[m],
                                   hovertemplate="%{text}<br>point %{customdata}<extra></extra>"))
    if len(sample.anchor_classes):
        fig.add_trace(go.Scatter(x=proj.anchor_coords[:, 0], y=proj.anchor_coords[:, 1], mode="markers+text",
                                 name="anchors â", text=[cname(c) for c in sample.anchor_classes.tolist()],
                                 textposition="top center",
                                 marker=dict(symbol="star", size=16, line=dict(width=1.5, color="black"),
                                             color=[_hex(palette[c]) if c < len(palette) else "#000"
                                                    for c in sample.anchor_classes.tolist()]),
                                 hovertemplate="anchor of %{text}<extra></extra>"))
    if highlight is not None:
        fig.add_trace(go.Scatter(x=[proj.coords[highlight, 0]], y=[proj.coords[highlight, 1]], mode="markers",
                                 name="picked", marker=dict(size=18, color="rgba(0,0,0,0)",
                                                            line=dict(width=3, color="black")), hoverinfo="skip"))
    fig.update_layout(title=title or f"{proj.method} of {len(sample)} pixels at {LAYER_NAMES[sample.layer]}",
                      height=460, margin=dict(l=10, r=10, t=40, b=10), legend=dict(itemsizing="constant"),
                      xaxis=dict(showticklabels=False), yaxis=dict(showticklabels=False))
    return fig


@dataclass
class ScatterCanvas:
    """Where the scatter image puts data coordinates: (u, v) pixel = pad + (x − x0)·sx, pad + (y1 − y)·sy."""

    size: tuple[int, int]  # (height, width) of the picture
    pad: int
    x0: float
    y1: float
    sx: float
    sy: float
    pixels: np.ndarray  # (N, 2) float (u, v) of every point

    def to_pixel(self, coords: np.ndarray) -> np.ndarray:
        c = np.asarray(coords, np.float64).reshape(-1, 2)
        return np.stack([self.pad + (c[:, 0] - self.x0) * self.sx, self.pad + (self.y1 - c[:, 1]) * self.sy], 1)


def _canvas(coords: np.ndarray, size: tuple[int, int], pad: int) -> ScatterCanvas:
    h, w = size
    lo, hi = coords.min(0), coords.max(0)
    span = np.maximum(hi - lo, 1e-9)
    canvas = ScatterCanvas(size, pad, float(lo[0]), float(hi[1]), (w - 2 * pad - 1) / float(span[0]),
                           (h - 2 * pad - 1) / float(span[1]), np.zeros((0, 2)))
    canvas.pixels = canvas.to_pixel(coords)
    return canvas


def _disc_offsets(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    keep = dy**2 + dx**2 <= radius * radius + radius
    return np.stack([dy[keep], dx[keep]], 1)


def scatter_image(sample: PixelSample, proj: Projection, colour_by: str, palette: Sequence[Sequence[int]],
                  size: tuple[int, int] = (480, 480), highlight: int | None = None,
                  radius: int = 2) -> tuple[np.ndarray, ScatterCanvas]:
    """The scatter drawn as an (H, W, 3) uint8 picture (clickable in an image component) and the canvas
    that maps picture pixels back to points (`pick_point`). Anchors are black-ringed stars; the
    highlighted point gets a black ring and cross-hair."""
    h, w = size
    everything = np.concatenate([proj.coords, proj.anchor_coords]) if len(proj.anchor_coords) else proj.coords
    canvas = _canvas(everything, size, pad=12)
    canvas.pixels = canvas.to_pixel(proj.coords)
    _, colours, _ = point_colours(sample, colour_by, palette)
    img = np.full((h, w, 3), 255, np.uint8)
    uv = np.rint(canvas.pixels).astype(np.int64)
    for dy, dx in _disc_offsets(radius):  # vectorised splat: later points draw over earlier ones
        vv, uu = np.clip(uv[:, 1] + dy, 0, h - 1), np.clip(uv[:, 0] + dx, 0, w - 1)
        img[vv, uu] = colours
    for (u, v), c in zip(np.rint(canvas.to_pixel(proj.anchor_coords)).astype(int), sample.anchor_classes.tolist()):
        colour = tuple(int(t) for t in palette[c]) if c < len(palette) else (0, 0, 0)
        cv2.drawMarker(img, (int(u), int(v)), (0, 0, 0), cv2.MARKER_STAR, 18, 4)
        cv2.drawMarker(img, (int(u), int(v)), colour, cv2.MARKER_STAR, 14, 2)
    if highlight is not None:
        u, v = (int(t) for t in np.rint(canvas.pixels[highlight]))
        cv2.circle(img, (u, v), 9, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.drawMarker(img, (u, v), (0, 0, 0), cv2.MARKER_CROSS, 30, 1)
    return img, canvas


def pick_point(canvas: ScatterCanvas, u: float, v: float, tolerance: float = 12.0) -> int | None:
    """A click at picture pixel (u = x, v = y) → the nearest point (KD-tree), or None if none lies within
    `tolerance` pixels."""
    from scipy.spatial import cKDTree

    if len(canvas.pixels) == 0:
        return None
    dist, idx = cKDTree(canvas.pixels).query([float(u), float(v)])
    return int(idx) if dist <= tolerance else None
