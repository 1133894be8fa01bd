"""Scalar maps → colour pictures with their colour bars, and alpha blending; the shared drawing vocabulary of the
views."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

COLORMAPS = {"viridis": cv2.COLORMAP_VIRIDIS, "inferno": cv2.COLORMAP_INFERNO, "magma": cv2.COLORMAP_MAGMA,
             "turbo": cv2.COLORMAP_TURBO}


def heat_rgb(values: np.ndarray, vmin: float | None = None, vmax: float | None = None,
             colormap: str = "viridis") -> np.ndarray:
    """(H, W) floats → (H, W, 3) uint8 RGB through `colormap`; values are clipped to [vmin, vmax]
    (default: the map's own min and max; a constant map draws as the colormap's low end)."""
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"heat_rgb expects a (H, W) map; got shape {v.shape}")
    if colormap not in COLORMAPS:
        raise ValueError(f"colormap must be one of {', '.join(COLORMAPS)}; got {colormap!r}")
    finite = np.isfinite(v)
    lo = float(np.min(v[finite])) if vmin is None and finite.any() else float(vmin or 0.0)
    hi = float(np.max(v[finite])) if vmax is None and finite.any() else float(1.0 if vmax is None else vmax)
    scaled = np.where(finite, (v - lo) / max(hi - lo, 1e-12), 0.0)
    u8 = (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.applyColorMap(u8, COLORMAPS[colormap])[..., ::-1].copy()  # OpenCV draws BGR


def resize_to(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize an (h, w[, c]) array to `size` = (H, W); nearest for labels/grids, bilinear otherwise."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)


def blend(base: np.ndarray, top: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """(1 − α)·base + α·top for uint8 RGB images of one size; α a scalar or an (H, W) map in [0, 1]."""
    if base.shape != top.shape:
        raise ValueError(f"blend needs images of one shape; got {base.shape} and {top.shape}")
    a = np.asarray(alpha, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    out = base.astype(np.float32) * (1.0 - a) + top.astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Scale:
    """The colour scale of one scalar map: values in [lo, hi] run through `colormap`; `label` names the quantity
    and its unit in a few ASCII characters (it is drawn on the bar); `clipped` says that `hi` was set below the map's maximum (a robust scale) and larger values are
    drawn at the top colour."""

    lo: float
    hi: float
    colormap: str
    label: str
    clipped: bool = False

    def rgb(self, values: np.ndarray) -> np.ndarray:
        """(h, w) → (h, w, 3) uint8 on this scale."""
        return heat_rgb(values, self.lo, self.hi, self.colormap)


def scale_of(values: np.ndarray, colormap: str, label: str, lo: float = 0.0, hi: float | None = None,
             robust_percentile: float | None = None) -> Scale:
    """A scale from `lo` to `hi` (default: the finite maximum, or its `robust_percentile` when given, so that a
    few extreme pixels, such as a ring at the border, do not wash out the rest)."""
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    top = float(finite.max()) if finite.size else lo + 1.0
    clipped = False
    if hi is None:
        hi = top
        if robust_percentile is not None and finite.size:
            robust = float(np.percentile(finite, robust_percentile))
            if robust > lo and robust < top:
                hi, clipped = robust, True
    return Scale(float(lo), float(max(hi, lo + 1e-6)), colormap, label, clipped)


def _ticks(scale: Scale, count: int = 5) -> list[float]:
    return [scale.lo + (scale.hi - scale.lo) * i / (count - 1) for i in range(count)]


def _tick_text(value: float, span: float) -> str:
    if span >= 20:
        return f"{value:.0f}"
    if span >= 2:
        return f"{value:.1f}"
    return f"{value:.2f}" if span >= 0.2 else f"{value:.3g}"


def with_colour_bar(picture: np.ndarray, scale: Scale, width: int = 92) -> np.ndarray:
    """`picture` (H, W, 3) uint8 with a vertical colour bar of `scale` on its right: ticks with their values and
    the quantity's label. Drawn on the picture as shown (after any enlarging), so the text stays legible."""
    h = picture.shape[0]
    panel = np.full((h, width, 3), 255, np.uint8)
    top, bottom = 22, max(h - 10, 32)
    bar_x0, bar_x1 = 6, 22
    ramp = np.linspace(1.0, 0.0, bottom - top, dtype=np.float32)[:, None].repeat(bar_x1 - bar_x0, 1)
    panel[top:bottom, bar_x0:bar_x1] = heat_rgb(ramp, 0.0, 1.0, scale.colormap)
    cv2.rectangle(panel, (bar_x0, top), (bar_x1 - 1, bottom - 1), (80, 80, 80), 1)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.36 if h >= 200 else 0.3
    span = scale.hi - scale.lo
    for i, value in enumerate(_ticks(scale)):
        y = int(round(bottom - 1 - (bottom - 1 - top) * i / 4))
        cv2.line(panel, (bar_x1, y), (bar_x1 + 4, y), (60, 60, 60), 1)
        text = _tick_text(value, span) + ("+" if scale.clipped and i == 4 else "")
        cv2.putText(panel, text, (bar_x1 + 6, min(max(y + 4, 10), h - 2)), font, size, (30, 30, 30), 1, cv2.LINE_AA)
    text = scale.label.encode("ascii", "replace").decode()  # OpenCV's fonts draw ASCII only
    label = text if len(text) <= 16 else text[:15] + "."
    cv2.putText(panel, label, (2, 14), font, size, (30, 30, 30), 1, cv2.LINE_AA)
    return np.concatenate([picture, panel], axis=1)
