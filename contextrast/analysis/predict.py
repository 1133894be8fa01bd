"""Prediction view: class map, overlay with per-class toggles and a hover that names each pixel's class,
probability and ground truth, confidence and entropy on fixed scales, legend."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from contextrast.analysis.colormaps import Scale, blend, heat_rgb
from contextrast.analysis.forward import one_image
from contextrast.analysis.image_io import image_trace
from contextrast.config import IGNORE_INDEX


@dataclass
class PredictionMaps:
    """labels (H, W) int64 argmax; confidence (H, W) max softmax in [1/K, 1];
    entropy (H, W) softmax entropy divided by log K, in [0, 1]."""

    labels: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray


def prediction_maps(logits: Tensor) -> PredictionMaps:
    """logits (1, K, H, W) or (K, H, W) → argmax, confidence and normalised entropy maps."""
    logits = one_image(logits, "logits")
    k = logits.shape[0]
    logp = torch.log_softmax(logits.detach().float(), dim=0)
    p = logp.exp()
    conf, labels = p.max(dim=0)
    entropy = -(p * logp).sum(dim=0) / (math.log(k) if k > 1 else 1.0)
    return PredictionMaps(labels.numpy().astype(np.int64), conf.numpy(), entropy.clamp(0, 1).numpy())


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) labels → (H, W, 3) uint8; ignore (255) and ids without a colour are black."""
    from contextrast.data.palette import colorize as data_colorize

    return data_colorize(labels, palette)


def overlay(rgb: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]], opacity: float = 0.5,
            visible: Iterable[int] | None = None) -> np.ndarray:
    """Class colours blended over the image: (H, W, 3) uint8.

    opacity in [0, 1]; `visible` lists the class ids drawn (None: all); other pixels show the image.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1]; got {opacity}")
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"labels {labels.shape} and image {rgb.shape[:2]} differ in size")
    shown = np.isin(labels, list(visible)) if visible is not None else (labels != IGNORE_INDEX)
    shown &= labels != IGNORE_INDEX
    return blend(rgb, colorize(labels, palette), shown.astype(np.float32) * opacity)


def confidence_rgb(maps: PredictionMaps) -> np.ndarray:
    """Max-softmax confidence drawn on a fixed 0..1 scale (bright = sure)."""
    return heat_rgb(maps.confidence, 0.0, 1.0, "viridis")


def entropy_rgb(maps: PredictionMaps) -> np.ndarray:
    """Normalised entropy drawn on a fixed 0..1 scale (bright = unsure)."""
    return heat_rgb(maps.entropy, 0.0, 1.0, "inferno")


@dataclass
class LegendEntry:
    class_id: int
    name: str
    colour: str  # "#rrggbb"
    share: float  # fraction of the image's pixels predicted as this class


def legend(labels: np.ndarray, classes: Sequence[str], palette: Sequence[Sequence[int]]) -> list[LegendEntry]:
    """One entry per class, with its colour and the share of pixels predicted as it."""
    counts = np.bincount(labels[labels != IGNORE_INDEX].ravel(), minlength=len(classes))[: len(classes)]
    total = max(int(labels.size), 1)
    return [LegendEntry(i, name, "#" + "".join(f"{int(v):02x}" for v in palette[i]), float(counts[i]) / total)
            for i, name in enumerate(classes)]


def pixel_accuracy(labels: np.ndarray, target: np.ndarray) -> float:
    """Share of the non-ignored ground-truth pixels that are predicted right (NaN when none)."""
    valid = target != IGNORE_INDEX
    return float((labels[valid] == target[valid]).mean()) if valid.any() else float("nan")


CONFIDENCE_SCALE = Scale(0.0, 1.0, "viridis", "max softmax p")
ENTROPY_SCALE = Scale(0.0, 1.0, "inferno", "entropy / log K")


def hover_figure(picture: np.ndarray, maps: PredictionMaps, truth: np.ndarray | None, classes: Sequence[str],
                 max_cells: int = 120, title: str = "") -> go.Figure:
    """`picture` (H, W, 3) uint8 as a plotly figure whose hover tells, for the pixel under the pointer, the
    predicted class, its probability and the ground truth. Hover reads a grid of at most `max_cells` along the
    longer side (every k-th pixel), so the page stays light on large images."""
    H, W = maps.labels.shape
    if picture.shape[:2] != (H, W):
        raise ValueError(f"picture {picture.shape[:2]} and prediction {(H, W)} differ in size")
    step = max(1, math.ceil(max(H, W) / max_cells))
    ys, xs = np.arange(step // 2, H, step), np.arange(step // 2, W, step)
    pred = maps.labels[np.ix_(ys, xs)]
    conf = maps.confidence[np.ix_(ys, xs)]
    names = np.array([*classes, "ignore"], dtype=object)

    def name(ids: np.ndarray) -> np.ndarray:
        return names[np.where((ids >= 0) & (ids < len(classes)), ids, len(classes))]

    text = name(pred) + np.char.mod(" (p = %.2f)", conf).astype(object)
    if truth is not None:
        text = text + "<br>truth: " + name(truth[np.ix_(ys, xs)])
    fig = go.Figure(image_trace(picture))
    fig.add_trace(go.Heatmap(x=xs, y=ys, z=pred.astype(np.float32), text=text, opacity=0.0, showscale=False,
                             hovertemplate="prediction: %{text}<extra>x=%{x}, y=%{y}</extra>"))
    fig.update_layout(title=title or None, margin=dict(l=0, r=0, t=30 if title else 0, b=0), height=360,
                      xaxis=dict(visible=False, range=[-0.5, W - 0.5]),
                      yaxis=dict(visible=False, range=[H - 0.5, -0.5], scaleanchor="x"))
    return fig
