"""SRM offset view (METHOD.md §1 "SRM"): the offset field Δ as colours and arrows, |Δ|, what the
neighbour mask changed (Δ vs Δ′), the mask's entropy, and the feature before/after warping."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from contextrast.analysis.colormaps import heat_rgb, resize_to
from contextrast.analysis.features import pca_basis, pca_rgb, srm_warp_features
from contextrast.analysis.forward import ModelRun

STEP_NAMES = ("1/32 → 1/16", "1/16 → 1/8", "1/8 → 1/4")


def _numpy_flow(flow: Tensor | np.ndarray) -> np.ndarray:
    f = flow.detach().float().cpu().numpy() if isinstance(flow, Tensor) else np.asarray(flow, np.float32)
    if f.ndim == 4:
        f = f[0]
    if f.ndim != 3 or f.shape[0] != 2:
        raise ValueError(f"expected an offset field (2, h, w) of (dx, dy); got shape {f.shape}")
    return f


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV → RGB, all in [0, 1] (h in turns); returns (..., 3) float."""
    i = np.floor(h * 6.0) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    out = np.zeros(h.shape + (3,), np.float64)
    for k, c in enumerate(choices):
        out = np.where((i == k)[..., None], c, out)
    return out


def flow_to_rgb(flow: Tensor | np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Offset field (2, h, w) of (dx, dy) in pixels → (h, w, 3) uint8, Middlebury-style in HSV:
    direction → hue (right = red, down = chartreuse, left = cyan, up = violet; y points down as in
    the image), magnitude / max_magnitude → saturation, value 1. Zero offset is white.
    `max_magnitude` defaults to the field's own largest |Δ|."""
    f = _numpy_flow(flow).astype(np.float64)
    dx, dy = f[0], f[1]
    mag = np.hypot(dx, dy)
    top = float(mag.max()) if max_magnitude is None else float(max_magnitude)
    hue = (np.arctan2(dy, dx) / (2 * math.pi)) % 1.0
    sat = np.clip(mag / top, 0.0, 1.0) if top > 0 else np.zeros_like(mag)
    return (hsv_to_rgb(hue, sat, np.ones_like(mag)) * 255.0 + 0.5).astype(np.uint8)


def color_wheel(size: int = 96) -> np.ndarray:
    """The legend of `flow_to_rgb`: (size, size, 3) uint8, offset (dx, dy) ∈ unit disk at each pixel,
    pixels outside the disk light grey."""
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    dy, dx = np.meshgrid(c, c, indexing="ij")
    wheel = flow_to_rgb(np.stack([dx, dy]), max_magnitude=1.0)
    wheel[np.hypot(dx, dy) > 1.0] = 235
    return wheel


def magnitude(flow: Tensor | np.ndarray) -> np.ndarray:
    """|Δ| (h, w) in pixels of the step's grid."""
    f = _numpy_flow(flow)
    return np.hypot(f[0], f[1])


def mask_entropy(mask: Tensor | np.ndarray) -> np.ndarray:
    """Entropy of the 3×3 neighbour weights M_w (9, h, w) per pixel, divided by log 9: 0 = one
    neighbour takes all the weight, 1 = all nine weigh the same. Unnormalised (sigmoid) masks are
    normalised to sum 1 first."""
    m = mask.detach().float().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask, np.float32)
    if m.ndim == 4:
        m = m[0]
    if m.ndim != 3 or m.shape[0] != 9:
        raise ValueError(f"expected a neighbour mask (9, h, w); got shape {m.shape}")
    p = m / np.clip(m.sum(axis=0, keepdims=True), 1e-12, None)
    ent = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=0) / math.log(9)
    return np.clip(ent, 0.0, 1.0)


def quiver_figure(rgb: np.ndarray, flow: Tensor | np.ndarray, max_arrows: int = 24, title: str = "") -> go.Figure:
    """Arrows of Δ over the image: at most `max_arrows` along the longer side, drawn from the grid
    cell's centre (in image pixels). Arrows are scaled so the longest is one arrow spacing long;
    the scale is stated in the title (offsets are in the step's grid pixels, ×stride in image px)."""
    f = _numpy_flow(flow)
    H, W = rgb.shape[:2]
    h, w = f.shape[1:]
    sy, sx = H / h, W / w
    every = max(1, math.ceil(max(h, w) / max_arrows))
    ys, xs = np.meshgrid(np.arange(every // 2, h, every), np.arange(every // 2, w, every), indexing="ij")
    dx, dy = f[0][ys, xs] * sx, f[1][ys, xs] * sy  # in image pixels
    x0, y0 = (xs + 0.5) * sx, (ys + 0.5) * sy
    longest = float(np.hypot(dx, dy).max()) if dx.size else 0.0
    scale = every * max(sx, sy) / longest if longest > 1e-9 else 1.0
    x1, y1 = x0 + dx * scale, y0 + dy * scale
    # arrow heads: two short strokes at ±25° behind the tip
    ang = np.arctan2(y1 - y0, x1 - x0)
    head = 0.3 * np.hypot(x1 - x0, y1 - y0)
    lines_x, lines_y = [], []
    for a, b, c, d, t, hl in zip(x0.ravel(), y0.ravel(), x1.ravel(), y1.ravel(), ang.ravel(), head.ravel()):
        lines_x += [a, c, None]
        lines_y += [b, d, None]
        if hl > 0.5:
            for side in (-1, 1):
                lines_x += [c, c - hl * math.cos(t + side * 0.45), None]
                lines_y += [d, d - hl * math.sin(t + side * 0.45), None]
    fig = go.Figure(go.Image(z=rgb, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=lines_x, y=lines_y, mode="lines", line=dict(color="#ffeb3b", width=1.5),
                             hoverinfo="skip", name="Δ"))
    fig.add_trace(go.Scatter(x=x0.ravel(), y=y0.ravel(), mode="markers", marker=dict(size=3, color="#ffeb3b"),
                             customdata=np.stack([f[0][ys, xs].ravel(), f[1][ys, xs].ravel()], -1),
                             hovertemplate="dx %{customdata[0]:.2f}, dy %{customdata[1]:.2f} px<extra></extra>",
                             name="origin"))
    suffix = f"arrows ×{scale:.3g}" if longest > 1e-9 else "all offsets are zero"
    fig.update_layout(title=f"{title} ({suffix})".strip(), showlegend=False, margin=dict(l=0, r=0, t=30, b=0),
                      xaxis=dict(visible=False, range=[0, W]), yaxis=dict(visible=False, range=[H, 0], scaleanchor="x"))
    return fig


CAPTIONS = {
    "flow": "Direction and length of the learned offset Δ: hue is the direction (see the wheel), "
            "paler means shorter; white means the pixel samples straight below itself, as plain bilinear upsampling would.",
    "wheel": "Colour key: the offset pointing from the centre to a spot is drawn in that spot's colour.",
    "arrows": "The same offsets as arrows over the image, on a subsampled grid, lengthened by the stated factor so they are visible.",
    "magnitude": "How far each pixel reaches for its upsampled feature (|Δ| in pixels of this step's grid); bright = far.",
    "initial": "The initial offsets Δ′ before the neighbour mask, on the same colour scale as Δ.",
    "change": "What the neighbour mask changed: |Δ − Δ′| in grid pixels; bright where mixing the 3×3 neighbours moved the offset most.",
    "entropy": "How spread the 3×3 neighbour weights are: dark = one neighbour dominates, bright = all nine count equally.",
    "before": "The upsampled coarse feature before warping (its three main components as RGB).",
    "after": "The same feature after warping by Δ, with the same colours: edges should line up better with the image.",
}


@dataclass
class OffsetViews:
    """Pictures of one SRM step, all (H, W, 3) uint8 at image size except `wheel`; `arrows` a plotly figure.
    `initial`, `change` and `entropy` are None when the model has no neighbour mask (srm_nomask)."""

    step: int
    grid: tuple[int, int]
    flow: np.ndarray
    wheel: np.ndarray
    arrows: go.Figure
    magnitude: np.ndarray
    initial: np.ndarray | None
    change: np.ndarray | None
    entropy: np.ndarray | None
    before: np.ndarray
    after: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=lambda: dict(CAPTIONS))


def render(run: ModelRun, step: int, max_arrows: int = 24) -> OffsetViews:
    """All pictures of SRM step 0 (1/32→1/16), 1 (1/16→1/8) or 2 (1/8→1/4) for one `ModelRun`.

    Raises ValueError when the model has no SRM (align=bilinear) or the step is out of range.
    """
    if not run.output.srm or all(s is None for s in run.output.srm):
        raise ValueError("this model upsamples bilinearly (align=bilinear): it has no SRM offsets to show")
    if not 0 <= step < len(run.output.srm):
        raise ValueError(f"SRM step must be 0..{len(run.output.srm) - 1} ({', '.join(STEP_NAMES)}); got {step}")
    inter = run.output.srm[step]
    size = run.rgb.shape[:2]
    offset, offset_init = _numpy_flow(inter.offset), _numpy_flow(inter.offset_init)
    mag = magnitude(offset)
    top = max(float(mag.max()), float(magnitude(offset_init).max()))
    big = lambda img: resize_to(img, size, nearest=True)  # noqa: E731 - grid cells drawn as blocks
    has_mask = inter.mask is not None
    change = magnitude(offset - offset_init) if has_mask else None
    before, after = srm_warp_features(run, step)
    basis = pca_basis(before, after)
    stats = {"mean |Δ| (grid px)": float(mag.mean()), "max |Δ| (grid px)": float(mag.max())}
    if change is not None:
        stats["mean |Δ − Δ′| (grid px)"] = float(change.mean())
    return OffsetViews(
        step=step,
        grid=tuple(offset.shape[1:]),
        flow=big(flow_to_rgb(offset, top)),
        wheel=color_wheel(),
        arrows=quiver_figure(run.rgb, offset, max_arrows, title=f"Δ at step {STEP_NAMES[step]}"),
        magnitude=big(heat_rgb(mag, 0.0, max(float(mag.max()), 1e-6), "magma")),
        initial=big(flow_to_rgb(offset_init, top)) if has_mask else None,
        change=big(heat_rgb(change, 0.0, max(float(change.max()), 1e-6), "magma")) if change is not None else None,
        entropy=big(heat_rgb(mask_entropy(inter.mask), 0.0, 1.0, "viridis")) if has_mask else None,
        before=resize_to(pca_rgb(before, basis), size),
        after=resize_to(pca_rgb(after, basis), size),
        stats=stats,
    )


def mean_offsets(run: ModelRun) -> list[float]:
    """Mean |Δ| of each SRM step (grid px); NaN for steps without an SRM."""
    return [float(torch.linalg.vector_norm(s.offset.float(), dim=1).mean()) if s is not None else float("nan")
            for s in run.output.srm]
