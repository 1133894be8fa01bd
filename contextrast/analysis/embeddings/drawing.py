"""The projected sample drawn as one clickable picture (`scatter_image`): points coloured by ground truth,
prediction, correct / wrong or BANE role, with axes, a legend, the anchors, a class filter and a selection;
`pick_point`, `points_in_box` and `points_in_polygon` map clicks on the picture back to points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

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


def class_name(classes: Sequence[str] | None, c: int) -> str:
    if classes is not None and 0 <= c < len(classes):
        return str(classes[c])
    return "unlabelled" if c == IGNORE_INDEX else str(c)


def point_colours(sample: PixelSample, colour_by: str, palette: Sequence[Sequence[int]],
                  classes: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Per point: category (N,) int, colour (N, 3) uint8, and category → legend name (class names from
    `classes` when colouring by ground truth or prediction)."""
    if colour_by not in COLOUR_BY:
        raise ValueError(f"colour by must be one of {', '.join(COLOUR_BY)}; got {colour_by!r}")
    if colour_by in ("ground truth", "prediction"):
        cat = sample.truth if colour_by == "ground truth" else sample.prediction
        if colour_by == "ground truth" and sample.balanced_by != "ground truth":
            raise ValueError("this image has no ground truth: colour by prediction, or add a label map")
        table = {c: tuple(palette[c]) if 0 <= c < len(palette) else (0, 0, 0) for c in np.unique(cat).tolist()}
        names = {c: class_name(classes, c) for c in table}
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


@dataclass
class ScatterCanvas:
    """Where the scatter picture puts data coordinates: (u, v) pixel = (left + (x − x0)·sx, top + (y1 − y)·sy);
    `pixels` (N, 2) float (u, v) of every point, NaN for points the class filter hides."""

    size: tuple[int, int]  # (height, width) of the picture
    left: int
    top: int
    x0: float
    y1: float
    sx: float
    sy: float
    pixels: np.ndarray

    def to_pixel(self, coords: np.ndarray) -> np.ndarray:
        c = np.asarray(coords, np.float64).reshape(-1, 2)
        return np.stack([self.left + (c[:, 0] - self.x0) * self.sx, self.top + (self.y1 - c[:, 1]) * self.sy], 1)

    def to_data(self, u: float, v: float) -> tuple[float, float]:
        return self.x0 + (u - self.left) / self.sx, self.y1 - (v - self.top) / self.sy


MARGINS = (46, 28, 170, 34)  # left, top, right (legend), bottom (axis) in picture pixels
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _canvas(coords: np.ndarray, size: tuple[int, int], margins: tuple[int, int, int, int] = MARGINS) -> ScatterCanvas:
    h, w = size
    left, top, right, bottom = margins
    lo, hi = coords.min(0), coords.max(0)
    span = np.maximum(hi - lo, 1e-9)
    pad = 0.03 * span  # the outermost dots stay inside the frame
    lo, hi, span = lo - pad, hi + pad, span + 2 * pad
    return ScatterCanvas(size, left, top, float(lo[0]), float(hi[1]), (w - left - right - 1) / float(span[0]),
                         (h - top - bottom - 1) / float(span[1]), np.zeros((0, 2)))


def _disc_offsets(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    keep = dy**2 + dx**2 <= radius * radius + radius
    return np.stack([dy[keep], dx[keep]], 1)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    raw = (hi - lo) / max(count - 1, 1)
    step = 10 ** np.floor(np.log10(raw)) if raw > 0 else 1.0
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    # rounded, and + 0.0 turns a -0.0 into 0.0: ticks read "0", not "-0" or "1e-16"
    return [round(float(t), 10) + 0.0 for t in np.arange(np.ceil(lo / step) * step, hi + 1e-12, step)]


def _vertical_text(img: np.ndarray, text: str, x: int, y_centre: int, scale: float,
                   colour: tuple[int, int, int]) -> None:
    """`text` written bottom to top (a y-axis name) with its top at column `x`, centred on row `y_centre`."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    y0 = max(0, y_centre - tw // 2)
    y1, x1 = min(img.shape[0], y0 + tw + 2), min(img.shape[1], x + th + base + 2)
    strip = np.ascontiguousarray(np.rot90(img[y0:y1, x:x1], k=-1))  # the region turned so the text runs along it
    cv2.putText(strip, text, (1, th + 1), FONT, scale, colour, 1, cv2.LINE_AA)
    img[y0:y1, x:x1] = np.rot90(strip, k=1)


def _axes(img: np.ndarray, canvas: ScatterCanvas, names: tuple[str, str], title: str) -> None:
    h, w = canvas.size
    left, top, right, bottom = canvas.left, canvas.top, w - MARGINS[2], h - MARGINS[3]
    cv2.rectangle(img, (left, top), (right, bottom), (120, 120, 120), 1)
    x_lo, y_hi = canvas.x0, canvas.y1
    x_hi, y_lo = canvas.to_data(right, bottom)
    for t in _nice_ticks(x_lo, x_hi):
        u = int(round(canvas.to_pixel(np.array([t, 0.0]))[0, 0]))
        cv2.line(img, (u, bottom), (u, bottom + 4), (90, 90, 90), 1)
        cv2.putText(img, f"{t:.3g}", (u - 10, bottom + 15), FONT, 0.33, (60, 60, 60), 1, cv2.LINE_AA)
    for t in _nice_ticks(y_lo, y_hi):
        v = int(round(canvas.to_pixel(np.array([0.0, t]))[0, 1]))
        cv2.line(img, (left - 4, v), (left, v), (90, 90, 90), 1)
        cv2.putText(img, f"{t:.3g}", (15, v + 4), FONT, 0.33, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, names[0], ((left + right) // 2 - 20, h - 6), FONT, 0.4, (30, 30, 30), 1, cv2.LINE_AA)
    _vertical_text(img, names[1], 1, (top + bottom) // 2, 0.4, (30, 30, 30))  # beside the ticks, clear of the title
    cv2.putText(img, title[:60], (left, 12), FONT, 0.4, (20, 20, 20), 1, cv2.LINE_AA)


def _legend(img: np.ndarray, entries: list[tuple[tuple[int, int, int], str, int, bool]]) -> None:
    """Legend rows (colour, name, count, shown) in the right margin; hidden classes are drawn struck through."""
    x0 = img.shape[1] - MARGINS[2] + 10
    for row, (colour, name, count, shown) in enumerate(entries[:24]):
        y = MARGINS[1] + 6 + 16 * row
        cv2.rectangle(img, (x0, y - 8), (x0 + 10, y + 2), tuple(int(c) for c in colour), -1)
        cv2.rectangle(img, (x0, y - 8), (x0 + 10, y + 2), (60, 60, 60), 1)
        text = f"{name[:16]} ({count})"
        cv2.putText(img, text, (x0 + 15, y + 1), FONT, 0.36, (30, 30, 30) if shown else (170, 170, 170), 1,
                    cv2.LINE_AA)
        if not shown:
            cv2.line(img, (x0 + 15, y - 3), (x0 + 15 + 7 * len(text), y - 3), (170, 170, 170), 1)


def scatter_image(sample: PixelSample, proj: Projection, colour_by: str, palette: Sequence[Sequence[int]],
                  size: tuple[int, int] = (500, 660), highlight: int | None = None, radius: int = 2,
                  classes: Sequence[str] | None = None, shown: Sequence[int] | None = None,
                  selected: np.ndarray | None = None, title: str = "") -> tuple[np.ndarray, ScatterCanvas]:
    """The scatter drawn as an (H, W, 3) uint8 picture (clickable in an image component) with axes (the
    projection's two coordinates), a legend of the colour categories with their counts, the anchors â as
    black-ringed stars, and the canvas that maps picture pixels back to points (`pick_point`).

    `shown`: ground-truth classes whose points are drawn (None: all; the others' canvas pixels are NaN, so they
    cannot be picked); `selected`: indices drawn with a black outline (a box selection); `highlight`: one point
    ringed with a cross-hair."""
    h, w = size
    everything = np.concatenate([proj.coords, proj.anchor_coords]) if len(proj.anchor_coords) else proj.coords
    canvas = _canvas(everything, size)
    canvas.pixels = canvas.to_pixel(proj.coords)
    cat, colours, names = point_colours(sample, colour_by, palette, classes)
    visible = np.ones(len(sample), bool) if shown is None else np.isin(sample.truth if sample.balanced_by ==
                                                                       "ground truth" else sample.prediction, list(shown))
    canvas.pixels[~visible] = np.nan
    img = np.full((h, w, 3), 255, np.uint8)
    idx = np.flatnonzero(visible)
    uv = np.rint(canvas.pixels[idx]).astype(np.int64)
    if selected is not None and len(selected):
        sel = np.isin(idx, selected)
        for dy, dx in _disc_offsets(radius + 1):
            vv, uu = np.clip(uv[sel, 1] + dy, 0, h - 1), np.clip(uv[sel, 0] + dx, 0, w - 1)
            img[vv, uu] = (0, 0, 0)
    for dy, dx in _disc_offsets(radius):  # vectorised splat: later points draw over earlier ones
        vv, uu = np.clip(uv[:, 1] + dy, 0, h - 1), np.clip(uv[:, 0] + dx, 0, w - 1)
        img[vv, uu] = colours[idx]
    for (u, v), c in zip(np.rint(canvas.to_pixel(proj.anchor_coords)).astype(int), sample.anchor_classes.tolist()):
        if shown is not None and c not in shown:
            continue
        colour = tuple(int(t) for t in palette[c]) if c < len(palette) else (0, 0, 0)
        cv2.drawMarker(img, (int(u), int(v)), (0, 0, 0), cv2.MARKER_STAR, 18, 4)
        cv2.drawMarker(img, (int(u), int(v)), colour, cv2.MARKER_STAR, 14, 2)
    if highlight is not None and visible[highlight]:
        u, v = (int(t) for t in np.rint(canvas.pixels[highlight]))
        cv2.circle(img, (u, v), 9, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.drawMarker(img, (u, v), (0, 0, 0), cv2.MARKER_CROSS, 30, 1)
    axis = ("UMAP 1", "UMAP 2") if proj.method == "UMAP" else ("PC 1", "PC 2")
    _axes(img, canvas, axis, title or f"{proj.method} of {len(sample)} pixels at {LAYER_NAMES[sample.layer]}")
    entries = []
    for c, name in names.items():
        m = cat == c
        entries.append((tuple(colours[m][0]), name, int(m.sum()), bool(visible[m].any())))
    if len(sample.anchor_classes):
        entries.append(((0, 0, 0), "anchors (stars)", int(len(sample.anchor_classes)), True))
    _legend(img, entries)
    return img, canvas


def pick_point(canvas: ScatterCanvas, u: float, v: float, tolerance: float = 12.0) -> int | None:
    """A click at picture pixel (u = x, v = y) → the nearest shown point (KD-tree), or None if none lies within
    `tolerance` pixels."""
    from scipy.spatial import cKDTree

    ok = np.flatnonzero(np.isfinite(canvas.pixels).all(1))
    if ok.size == 0:
        return None
    dist, idx = cKDTree(canvas.pixels[ok]).query([float(u), float(v)])
    return int(ok[idx]) if dist <= tolerance else None


def points_in_box(canvas: ScatterCanvas, corner_a: Sequence[float], corner_b: Sequence[float]) -> np.ndarray:
    """The shown points inside the box spanned by two picture pixels (u, v) → sorted indices (M,)."""
    (u0, v0), (u1, v1) = corner_a, corner_b
    p = canvas.pixels
    ok = np.isfinite(p).all(1)
    inside = ok & (p[:, 0] >= min(u0, u1)) & (p[:, 0] <= max(u0, u1)) & (p[:, 1] >= min(v0, v1)) & \
        (p[:, 1] <= max(v0, v1))
    return np.flatnonzero(inside)


def points_in_polygon(canvas: ScatterCanvas, corners: Sequence[Sequence[float]]) -> np.ndarray:
    """The shown points inside the polygon (a lasso) through picture pixels (u, v) → sorted indices (M,).
    The polygon is filled on a mask of the picture (OpenCV), so a point on its outline counts as inside."""
    if len(corners) < 3:
        raise ValueError(f"a lasso needs at least 3 corners; got {len(corners)}")
    h, w = canvas.size
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(corners, np.float64)).astype(np.int32).reshape(-1, 1, 2)], 1)
    p = canvas.pixels
    ok = np.isfinite(p).all(1)
    uv = np.zeros((len(p), 2), np.int64)
    uv[ok] = np.round(p[ok]).astype(np.int64)
    ok &= (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    inside = np.zeros(len(p), bool)
    inside[ok] = mask[uv[ok, 1], uv[ok, 0]] > 0
    return np.flatnonzero(inside)


def draw_lasso(picture: np.ndarray, corners: Sequence[Sequence[float]]) -> np.ndarray:
    """The scatter picture (H, W, 3) uint8 with the lasso drawn so far: its corners and the lines between them."""
    out = np.ascontiguousarray(picture.copy())
    pts = np.round(np.asarray(corners, np.float64)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(out, [pts], isClosed=False, color=(17, 17, 17), thickness=2, lineType=cv2.LINE_AA)
    for x, y in pts[:, 0]:
        cv2.circle(out, (int(x), int(y)), 5, (239, 68, 68), thickness=-1, lineType=cv2.LINE_AA)
    return out
