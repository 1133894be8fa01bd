"""BANE view (METHOD.md §2 "BANE"): per layer and class, the error region, the distance to its edge,
and the pixels the loss actually sampled (BANE negatives, random negatives, positives), plus the
per-class pixel-to-anchor loss terms. Everything is read from the loss's own `LossRecord`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch

from contextrast.analysis.colormaps import Scale, blend, resize_to
from contextrast.analysis.forward import ModelRun
from contextrast.analysis.image_io import image_trace
from contextrast.config import IGNORE_INDEX, LossConfig
from contextrast.losses.record import BANE_NEGATIVE, POSITIVE, RANDOM_NEGATIVE, ROLE_NAMES, LayerRecord, LossRecord

LAYER_NAMES = ("E1 (1/4)", "E2 (1/8)", "E3 (1/16)", "E4 (1/32)")
ROLE_STYLE = {  # role → (marker colour, symbol); drawn in this order so positives stay under negatives
    POSITIVE: ("#22c55e", "circle"),
    RANDOM_NEGATIVE: ("#3b82f6", "diamond"),
    BANE_NEGATIVE: ("#ef4444", "x"),
}

CAPTIONS = {
    "error": "Error region of the class at this layer (red): pixels the model predicts as this class whose "
             "ground truth is another class, on the layer's own grid.",
    "distance": "Distance of each error pixel to the edge of its error region, in pixels of the layer's grid "
                "(colour bar; bright = deep inside); BANE keeps the K_s % of error pixels nearest the edge.",
    "samples": "The pixels the loss sampled for this class's anchor: red × = BANE (hard) negatives, "
               "blue ◆ = random negatives, green ● = positives (at most K and P per anchor).",
    "loss": "The pixel-to-anchor loss L_i(n) of each class at each layer, before the layer weights λ_i.",
}


def run_loss(run: ModelRun, target: np.ndarray, num_classes: int, bane_percent: float = 50.0,
             seed: int = 0, config: LossConfig | None = None, **loss_options: object) -> LossRecord:
    """Run the Contextrast loss (CE + CCL with BANE, from the first iteration) on `run`'s own output against
    `target` (H, W) int labels (255 = ignore) and return its `LossRecord`.

    `config`: the settings the model was trained with (`contextrast.analysis.cards.training_loss`: τ, w_h,
    BANE's rule and distance stride, K and P, …; defaults when None). `bane_percent` is K_s; the random parts
    of the sampling use a fixed `seed`, so the same image and K_s give the same picture. Extra `loss_options`
    are `LossConfig` fields that replace the config's.
    """
    from contextrast.losses import build_loss

    if target.shape != run.rgb.shape[:2]:
        raise ValueError(f"labels {target.shape} and image {run.rgb.shape[:2]} differ in size")
    if run.output.embeddings is None:
        raise ValueError("the model run has no embeddings; run it with contextrast.analysis.forward.run_model")
    base = vars(config) if config is not None else {}
    config = LossConfig(**{**base, "name": "contextrast", "bane_percent": float(bane_percent),
                           "contrast_start": 0.0, **loss_options})
    loss_fn = build_loss(config, num_classes)
    y = torch.as_tensor(np.asarray(target, np.int64)).unsqueeze(0)
    generator = torch.Generator().manual_seed(int(seed))
    with torch.inference_mode():
        result = loss_fn(run.output, y, progress=1.0, record=True, generator=generator)
    if result.record is None:
        raise ValueError("the loss returned no record")
    return result.record


def layer_record(record: LossRecord, layer: int) -> LayerRecord:
    for rec in record.layers:
        if rec.layer == layer:
            return rec
    have = ", ".join(str(r.layer) for r in record.layers) or "none"
    raise ValueError(f"the loss record has no layer {layer}; recorded layers: {have}")


def error_region(rec: LayerRecord, cls: int, image: int = 0) -> np.ndarray:
    """(h, w) bool: pixels of layer `rec` predicted as `cls` whose ground truth is another valid class
    (B_i^n of METHOD.md §2). Read from the record's own distance map when the loss kept one."""
    if rec.error_distance is not None:
        region = rec.error_distance[image] > 0
        if rec.prediction is not None:
            region &= rec.prediction[image] == cls
        return region.cpu().numpy()
    if rec.prediction is None:
        raise ValueError(f"layer {rec.layer}'s record holds no prediction (the loss did not use BANE)")
    labels, pred = rec.labels[image], rec.prediction[image]
    return ((pred == cls) & (labels != cls) & (labels != IGNORE_INDEX)).cpu().numpy()


def error_distance(rec: LayerRecord, cls: int, image: int = 0) -> np.ndarray:
    """(h, w) float: the record's distance-to-edge inside `cls`'s error region, NaN outside it."""
    if rec.error_distance is None:
        raise ValueError(f"layer {rec.layer}'s record holds no error distances (the loss did not use BANE)")
    d = rec.error_distance[image].float().cpu().numpy().copy()
    d[~error_region(rec, cls, image)] = np.nan
    return d


@dataclass
class DrawnSamples:
    """The sampled pixels of one (layer, class, image), per role: grid (y, x) arrays, int64."""

    role_yx: dict[int, tuple[np.ndarray, np.ndarray]]
    distance: np.ndarray  # distances of the BANE negatives, in the order of role_yx[BANE_NEGATIVE]

    def count(self, role: int) -> int:
        return int(self.role_yx[role][0].size)


def samples_of(rec: LayerRecord, cls: int, image: int = 0) -> DrawnSamples:
    """The record's samples drawn for anchor class `cls` in `image`, split by role."""
    s = rec.samples
    sel = (s.cls == cls) & (s.image == image)
    out = {}
    for role in ROLE_STYLE:
        m = sel & (s.role.long() == role)
        out[role] = (s.y[m].long().numpy(), s.x[m].long().numpy())
    bane = sel & (s.role.long() == BANE_NEGATIVE)
    return DrawnSamples(out, s.distance[bane].float().numpy())


def samples_figure(rgb: np.ndarray, rec: LayerRecord, drawn: DrawnSamples, title: str = "") -> go.Figure:
    """The image with one marker per sampled pixel, at the centre of its layer-grid cell in image pixels.
    One trace per role, named by the role; each trace's customdata holds the grid (y, x)."""
    H, W = rgb.shape[:2]
    h, w = rec.grid
    fig = go.Figure(image_trace(rgb))
    for role, (colour, symbol) in ROLE_STYLE.items():
        ys, xs = drawn.role_yx[role]
        fig.add_trace(go.Scatter(
            x=(xs + 0.5) * W / w, y=(ys + 0.5) * H / h, mode="markers", name=f"{ROLE_NAMES[role]} ({ys.size})",
            marker=dict(color=colour, symbol=symbol, size=7 if role == BANE_NEGATIVE else 6,
                        line=dict(width=1, color="white" if role != BANE_NEGATIVE else colour)),
            customdata=np.stack([ys, xs], -1) if ys.size else np.zeros((0, 2), np.int64),
            hovertemplate=f"{ROLE_NAMES[role]}<br>grid y %{{customdata[0]}}, x %{{customdata[1]}}<extra></extra>",
        ))
    fig.update_layout(title=title, margin=dict(l=0, r=0, t=30, b=0), legend=dict(orientation="h", y=-0.02),
                      xaxis=dict(visible=False, range=[0, W]), yaxis=dict(visible=False, range=[H, 0], scaleanchor="x"))
    return fig


def class_loss_figure(record: LossRecord, classes: Sequence[str]) -> go.Figure:
    """Grouped bars: for each class (x), one bar per layer with L_i(n) from the record."""
    fig = go.Figure()
    for rec in record.layers:
        ids = sorted(rec.class_loss)
        fig.add_trace(go.Bar(x=[classes[i] if i < len(classes) else str(i) for i in ids],
                             y=[rec.class_loss[i] for i in ids], name=LAYER_NAMES[rec.layer]))
    fig.update_layout(barmode="group", yaxis_title="L_i(n)", height=320, margin=dict(l=10, r=10, t=30, b=10),
                      title="pixel-to-anchor loss per class and layer")
    return fig


@dataclass
class BaneViews:
    """error, distance: (H, W, 3) uint8 over the image; samples, losses: plotly figures;
    counts: role name → number drawn; terms: the loss's scalar terms; distance_scale: the distance map's colour
    scale (None when the record holds no distances)."""

    layer: int
    cls: int
    error: np.ndarray
    distance: np.ndarray
    distance_scale: Scale | None
    samples: go.Figure
    losses: go.Figure
    counts: dict[str, int]
    terms: dict[str, float]
    captions: dict[str, str] = field(default_factory=lambda: dict(CAPTIONS))
    note: str = ""  # `distance_note` of the distance map, when it says something


def distance_scale(dist: np.ndarray, layer: int) -> Scale:
    """0 to the largest distance of the map (at least 1 grid pixel), in pixels of the layer's grid."""
    finite = dist[np.isfinite(dist)]
    top = max(float(finite.max()) if finite.size else 1.0, 1.0)
    return Scale(0.0, top, "inferno", f"E{layer + 1} grid px")


def distance_note(dist: np.ndarray, layer: int, rule: str = "rank") -> str:
    """A sentence when every error pixel of the map lies at the same distance (thin regions on a coarse grid):
    the picture is then one colour, and which pixels BANE keeps is decided by the rule's tie-break alone. "" when
    the distances differ or there is no error region. `dist`: (h, w) distances, NaN outside the region."""
    finite = dist[np.isfinite(dist)]
    if finite.size < 2 or float(finite.max() - finite.min()) > 1e-6:
        return ""
    ties = ("the rank rule keeps K_s % of them, drawn at random among the ties" if rule == "rank"
            else "the percentile rule keeps all of them, whatever K_s is")
    return (f"Every one of the {finite.size} error pixels lies {finite.max():g} E{layer + 1} grid px from its region's "
            f"edge (the regions are that thin at this grid), so the map shows one colour: {ties}.")


def render(record: LossRecord, rgb: np.ndarray, layer: int, cls: int, classes: Sequence[str],
           scale: Scale | None = None, rule: str = "rank") -> BaneViews:
    """All BANE pictures of `layer` (0..3) and class `cls` for the one image of `record`; `scale` replaces the
    distance map's own (to keep one scale across images, layers and models)."""
    if not 0 <= cls < len(classes):
        raise ValueError(f"class must be 0..{len(classes) - 1}; got {cls}")
    rec = layer_record(record, layer)
    size = rgb.shape[:2]
    region = error_region(rec, cls)
    error = blend(rgb, np.full_like(rgb, (239, 68, 68)), resize_to(region.astype(np.float32), size, nearest=True) * 0.7)
    used, note = None, ""
    if rec.error_distance is not None:
        dist = error_distance(rec, cls)
        note = distance_note(dist, layer, rule)
        used = scale or distance_scale(dist, layer)
        heat = resize_to(used.rgb(np.nan_to_num(dist, nan=0.0)), size, nearest=True)
        distance = blend((rgb * 0.35).astype(np.uint8), heat, resize_to(region.astype(np.float32), size, nearest=True))
    else:
        distance = (rgb * 0.35).astype(np.uint8)
    drawn = samples_of(rec, cls)
    title = f"{classes[cls]} at {LAYER_NAMES[layer]}"
    return BaneViews(
        layer=layer, cls=cls, error=error, distance=distance, distance_scale=used,
        samples=samples_figure(rgb, rec, drawn, title), losses=class_loss_figure(record, classes),
        counts={ROLE_NAMES[r]: drawn.count(r) for r in ROLE_STYLE}, terms=dict(record.terms), note=note,
    )
