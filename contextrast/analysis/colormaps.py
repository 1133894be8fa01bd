"""Scalar maps → colour pictures, and alpha blending; the shared drawing vocabulary of the views."""

from __future__ import annotations

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
