"""SRM offset view (METHOD.md §1 "SRM"): the offset field Δ as colours and arrows, |Δ|, what the
neighbour mask changed (Δ vs Δ′), the mask's entropy, and the feature before/after warping."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from contextrast.analysis.colormaps import Scale, resize_to, scale_of
from contextrast.analysis.diagnose import srm_statistics
from contextrast.analysis.features import pca_basis, pca_rgb, srm_warp_features
from contextrast.analysis.forward import ModelRun
from contextrast.analysis.image_io import image_trace

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


def arrow_scale(rgb_shape: tuple[int, ...], flow: Tensor | np.ndarray, max_arrows: int = 24) -> float:
    """The factor `quiver_figure` draws arrows with: the longest offset (in image pixels) becomes one arrow
    spacing long; 1 for an all-zero field."""
    f = _numpy_flow(flow)
    H, W = rgb_shape[:2]
    h, w = f.shape[1:]
    sy, sx = H / h, W / w
    every = max(1, math.ceil(max(h, w) / max_arrows))
    longest = float(np.hypot(f[0][every // 2::every, every // 2::every] * sx,
                             f[1][every // 2::every, every // 2::every] * sy).max()) if f.size else 0.0
    return every * max(sx, sy) / longest if longest > 1e-9 else 1.0


def arrow_scale_sentence(scale: float) -> str:
    """How `arrow_scale` changed the arrows' lengths, in words."""
    if abs(scale - 1.0) < 0.05:
        return "Arrows are drawn at their true length in image pixels."
    if scale < 1.0:
        return (f"Arrows are drawn at {scale:.2g}× their true length (shortened, so the longest fits one arrow "
                f"spacing; the true offsets are {1 / scale:.2g}× longer).")
    return (f"Arrows are drawn at {scale:.2g}× their true length (lengthened, so short offsets stay visible; the "
            "true offsets are shorter).")


def quiver_figure(rgb: np.ndarray, flow: Tensor | np.ndarray, max_arrows: int = 24, title: str = "") -> go.Figure:
    """Arrows of Δ over the image: at most `max_arrows` along the longer side, drawn from the grid
    cell's centre (in image pixels). Arrows are scaled by `arrow_scale` (the longest is one arrow spacing
    long); the factor is stated in the title, and the hover gives each offset in grid and image pixels."""
    f = _numpy_flow(flow)
    H, W = rgb.shape[:2]
    h, w = f.shape[1:]
    sy, sx = H / h, W / w
    every = max(1, math.ceil(max(h, w) / max_arrows))
    ys, xs = np.meshgrid(np.arange(every // 2, h, every), np.arange(every // 2, w, every), indexing="ij")
    dx, dy = f[0][ys, xs] * sx, f[1][ys, xs] * sy  # in image pixels
    x0, y0 = (xs + 0.5) * sx, (ys + 0.5) * sy
    longest = float(np.hypot(dx, dy).max()) if dx.size else 0.0
    scale = arrow_scale(rgb.shape, f, max_arrows)
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
    fig = go.Figure(image_trace(rgb))
    fig.add_trace(go.Scatter(x=lines_x, y=lines_y, mode="lines", line=dict(color="#ffeb3b", width=1.5),
                             hoverinfo="skip", name="Δ"))
    fig.add_trace(go.Scatter(x=x0.ravel(), y=y0.ravel(), mode="markers", marker=dict(size=3, color="#ffeb3b"),
                             customdata=np.stack([f[0][ys, xs].ravel(), f[1][ys, xs].ravel(), dx.ravel(),
                                                  dy.ravel()], -1),
                             hovertemplate="Δ = (%{customdata[0]:.2f}, %{customdata[1]:.2f}) grid px = "
                                           "(%{customdata[2]:.1f}, %{customdata[3]:.1f}) image px<extra></extra>",
                             name="origin"))
    suffix = f"arrows at {scale:.3g}× true length" if longest > 1e-9 else "all offsets are zero"
    fig.update_layout(title=f"{title} ({suffix})".strip(), showlegend=False, margin=dict(l=0, r=0, t=30, b=0),
                      xaxis=dict(visible=False, range=[0, W]), yaxis=dict(visible=False, range=[H, 0], scaleanchor="x"))
    return fig


CAPTIONS = {
    "flow": "Direction and length of the learned offset Δ: hue is the direction (see the wheel), "
            "paler means shorter (full colour at the |Δ| scale's top); white means the pixel samples straight below "
            "itself, as plain bilinear upsampling would.",
    "wheel": "Colour key: the offset pointing from the centre to a spot is drawn in that spot's colour.",
    "arrows": "The same offsets as arrows over the image, on a subsampled grid, scaled by the factor in the title "
              "(the line above says whether that shortens or lengthens them); hover an arrow's origin for Δ in grid "
              "and image pixels.",
    "magnitude": "How far each pixel reaches for its upsampled feature: |Δ| in pixels of this step's grid (× the "
                 "grid's stride in image pixels); the scale stops at the 99th percentile so a few far pixels do not "
                 "wash out the rest.",
    "initial": "The initial offsets Δ′ before the neighbour mask, on the same colour scale as Δ.",
    "change": "What the neighbour mask changed: |Δ − Δ′| in grid pixels; bright where mixing the 3×3 neighbours moved "
              "the offset most (scale to the 99th percentile).",
    "entropy": "How spread the 3×3 neighbour weights are, as a share of log 9: 0 = one neighbour takes all the weight, "
               "1 = all nine count equally.",
    "before": "The upsampled coarse feature before warping (its three main components as RGB).",
    "after": "The same feature after warping by Δ, with the same colours: edges should line up better with the image.",
}


@dataclass
class OffsetViews:
    """Pictures of one SRM step, all (H, W, 3) uint8 at image size except `wheel`; `arrows` a plotly figure.
    `initial`, `change` and `entropy` are None when the model has no neighbour mask (srm_nomask). `scales`:
    quantity → the colour scale its picture was drawn with (for colour bars and for keeping one scale);
    `stride`: image pixels per grid pixel of this step; `arrow_scale`: the arrows' length factor."""

    step: int
    grid: tuple[int, int]
    stride: float
    flow: np.ndarray
    wheel: np.ndarray
    arrows: go.Figure
    arrow_scale: float
    magnitude: np.ndarray
    initial: np.ndarray | None
    change: np.ndarray | None
    entropy: np.ndarray | None
    before: np.ndarray
    after: np.ndarray
    scales: dict[str, Scale] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=lambda: dict(CAPTIONS))


ROBUST_PERCENTILE = 99.0  # |Δ| maps: a one-cell ring at the border must not set the scale
ENTROPY_SCALE = Scale(0.0, 1.0, "viridis", "entropy / log 9")


def render(run: ModelRun, step: int, max_arrows: int = 24, scales: Mapping[str, Scale] | None = None) -> OffsetViews:
    """All pictures of SRM step 0 (1/32→1/16), 1 (1/16→1/8) or 2 (1/8→1/4) for one `ModelRun`; `scales`
    (quantity → Scale, as in `OffsetViews.scales`) replaces the computed ones, to keep one scale across views.

    Raises ValueError when the model has no SRM (align=bilinear) or the step is out of range.
    """
    if not run.output.srm or all(s is None for s in run.output.srm):
        raise ValueError("this model upsamples bilinearly (align=bilinear): it has no SRM offsets to show")
    if not 0 <= step < len(run.output.srm):
        raise ValueError(f"SRM step must be 0..{len(run.output.srm) - 1} ({', '.join(STEP_NAMES)}); got {step}")
    given = dict(scales or {})
    inter = run.output.srm[step]
    size = run.rgb.shape[:2]
    offset, offset_init = _numpy_flow(inter.offset), _numpy_flow(inter.offset_init)
    stride = size[0] / offset.shape[1]
    mag = magnitude(offset)
    big = lambda img: resize_to(img, size, nearest=True)  # noqa: E731 - grid cells drawn as blocks
    has_mask = inter.mask is not None
    change = magnitude(offset - offset_init) if has_mask else None
    used = {"magnitude": given.get("magnitude") or scale_of(np.concatenate([mag.ravel(), magnitude(offset_init).ravel()]),
                                                             "magma", "offset, grid px", robust_percentile=ROBUST_PERCENTILE)}
    if change is not None:
        used["change"] = given.get("change") or scale_of(change, "magma", "change, grid px",
                                                         robust_percentile=ROBUST_PERCENTILE)
        used["entropy"] = ENTROPY_SCALE
    before, after = srm_warp_features(run, step)
    basis = pca_basis(before, after)
    moved = srm_statistics(run.output)[step]
    stats = {"mean Δ x (grid px)": moved["dx"], "mean Δ y (grid px)": moved["dy"],
             "mean Δ x (image px)": moved["dx"] * stride, "mean Δ y (image px)": moved["dy"] * stride,
             "mean |Δ| (grid px)": float(mag.mean()), "mean |Δ| (image px)": float(mag.mean()) * stride,
             "max |Δ| (grid px)": float(mag.max()), "share |Δ| > 2 grid px": moved["share_over_2px"]}
    if change is not None:
        stats["mean |Δ − Δ′| (grid px)"] = float(change.mean())
    top = used["magnitude"].hi
    return OffsetViews(
        step=step,
        grid=tuple(offset.shape[1:]),
        stride=stride,
        flow=big(flow_to_rgb(offset, top)),
        wheel=color_wheel(),
        arrows=quiver_figure(run.rgb, offset, max_arrows, title=f"Δ at step {STEP_NAMES[step]}"),
        arrow_scale=arrow_scale(run.rgb.shape, offset, max_arrows),
        magnitude=big(used["magnitude"].rgb(mag)),
        initial=big(flow_to_rgb(offset_init, top)) if has_mask else None,
        change=big(used["change"].rgb(change)) if change is not None else None,
        entropy=big(ENTROPY_SCALE.rgb(mask_entropy(inter.mask))) if has_mask else None,
        before=resize_to(pca_rgb(before, basis), size),
        after=resize_to(pca_rgb(after, basis), size),
        scales=used,
        stats=stats,
    )


def mean_offsets(run: ModelRun) -> list[float]:
    """Mean |Δ| of each SRM step (grid px); NaN for steps without an SRM."""
    return [float(torch.linalg.vector_norm(s.offset.float(), dim=1).mean()) if s is not None else float("nan")
            for s in run.output.srm]
