"""Embedding view (issue 7): a class-balanced sample of pixel embeddings from one projection head,
projected to 2-D by PCA (instant) or UMAP (umap-learn), with the exact source pixel of every point.

METHOD.md §2 "Embeddings": layer i's head gives E_i (1, 256, h_i, w_i), L2-normalised; the loss sees
the ground truth nearest-downsampled to that grid (Y_i) and the prediction downsampled the same way (Ŷ_i).
A point here is one cell (gy, gx) of that grid; its *source pixel* is the image pixel that nearest
downsampling reads for the cell (`contextrast.losses.grid.nearest_indices`), so the point's ground
truth is exactly the label of its source pixel. Clicking an image pixel picks the cell whose pixel block
holds it. Anchors (METHOD.md §2 "Representative anchors") are the class means over the sampled images
after the contextual update with the deepest layer, fitted with the points so they land in the same plane.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import plotly.graph_objects as go
import torch

from contextrast.analysis.forward import ModelRun
from contextrast.config import IGNORE_INDEX
from contextrast.losses.anchors import class_means, contextual_update
from contextrast.losses.bane import bane_negatives
from contextrast.losses.grid import nearest_indices, nearest_resize, prediction_at

LAYER_NAMES = ("E1 (1/4)", "E2 (1/8)", "E3 (1/16)", "E4 (1/32)")
MIN_POINTS, MAX_POINTS = 100, 30_000
COLOUR_BY = ("ground truth", "prediction", "correct / wrong", "BANE role")
# BANE role of a labelled pixel at its layer (METHOD.md §2 "BANE"), with K_s = 50 %
CORRECT, HARD, FAR_ERROR, UNLABELLED = range(4)
ROLE_NAMES = {CORRECT: "correct", HARD: "BANE hard negative (error near its edge)",
              FAR_ERROR: "error deep inside its region", UNLABELLED: "unlabelled"}
ROLE_COLOURS = {CORRECT: (160, 160, 160), HARD: (230, 40, 40), FAR_ERROR: (250, 160, 30), UNLABELLED: (90, 90, 220)}
RIGHT_WRONG_COLOURS = {0: (40, 170, 80), 1: (225, 40, 40)}  # 0 = correct, 1 = wrong
UMAP_NEIGHBOURS = 10
PCA_DIMS = 32  # UMAP runs on the top principal components: same neighbours, a fraction of the distance cost


@dataclass
class LayerPixels:
    """One image at one layer: embeddings (D, h, w) float32; truth, prediction (h, w) int64 on the grid
    (truth 255 where unlabelled or no labels); size (H, W) of the image; deep (D, h4, w4) the deepest
    layer's embeddings and deep_truth (h4, w4) for the contextual update of the anchors."""

    embeddings: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    size: tuple[int, int]
    deep: np.ndarray
    deep_truth: np.ndarray
    labelled: bool

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.truth.shape[0]), int(self.truth.shape[1])


def layer_pixels(run: ModelRun, layer: int, labels: np.ndarray | None) -> LayerPixels:
    """Read layer `layer` (0..3) of one analysis forward pass. `labels` (H, W) ints, 255 = ignore, or None."""
    embeddings = run.output.embeddings
    if embeddings is None:
        raise ValueError("the model run has no embeddings; run it with contextrast.analysis.forward.run_model")
    if not isinstance(layer, int | np.integer) or not 0 <= int(layer) < len(embeddings):
        raise ValueError(f"layer must be an integer 0..{len(embeddings) - 1} ({', '.join(LAYER_NAMES)}); got {layer!r}")
    layer = int(layer)
    H, W = run.rgb.shape[:2]
    emb = embeddings[layer][0].detach().float()
    grid = tuple(emb.shape[-2:])
    deep = embeddings[-1][0].detach().float()
    if labels is not None:
        if labels.shape != (H, W):
            raise ValueError(f"labels {labels.shape} and image {(H, W)} differ in size")
        y = torch.as_tensor(np.asarray(labels, np.int64))[None]
        truth = nearest_resize(y, grid)[0].numpy()
        deep_truth = nearest_resize(y, tuple(deep.shape[-2:]))[0].numpy()
    else:
        truth = np.full(grid, IGNORE_INDEX, np.int64)
        deep_truth = np.full(tuple(deep.shape[-2:]), IGNORE_INDEX, np.int64)
    pred = prediction_at(run.logits, grid)[0].numpy()
    return LayerPixels(emb.numpy(), truth, pred, (H, W), deep.numpy(), deep_truth, labels is not None)


def source_rows_cols(size: tuple[int, int], grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For a grid (h, w) read from an image (H, W) by nearest downsampling: the image row of every grid
    row (h,) and the image column of every grid column (w,) — the cells' source pixels."""
    rows = nearest_indices(size[0], grid[0], torch.device("cpu")).numpy()
    cols = nearest_indices(size[1], grid[1], torch.device("cpu")).numpy()
    return rows, cols


@dataclass
class PixelSample:
    """N sampled grid cells of one layer over one or more images, with their provenance.

    features (N, D) float32; image, gy, gx (N,) int64 (image index, grid row, grid column);
    truth, prediction, role (N,) int64 (role: CORRECT | HARD | FAR_ERROR | UNLABELLED);
    grids[i] (h, w) and sizes[i] (H, W) per image; anchors (A, D) and anchor_classes (A,) — the
    updated anchors â of the classes present (empty without labels); balanced_by: "ground truth" or
    "prediction"; available: how many cells could have been sampled.
    """

    layer: int
    features: np.ndarray
    image: np.ndarray
    gy: np.ndarray
    gx: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    role: np.ndarray
    grids: list[tuple[int, int]]
    sizes: list[tuple[int, int]]
    anchors: np.ndarray
    anchor_classes: np.ndarray
    balanced_by: str
    available: int

    def __len__(self) -> int:
        return int(self.image.size)


def check_sample_size(n: object) -> int:
    """The number of points asked for, as an int in [MIN_POINTS, MAX_POINTS]; ValueError otherwise."""
    try:
        value = int(n)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"sample size must be a whole number of points, {MIN_POINTS}..{MAX_POINTS}; got {n!r}") from None
    if value != n or not MIN_POINTS <= value <= MAX_POINTS:
        raise ValueError(f"sample size must be a whole number of points between {MIN_POINTS} and {MAX_POINTS}; "
                         f"got {n!r}")
    return value


def balanced_quota(counts: np.ndarray, n: int) -> np.ndarray:
    """How many of each class to draw so the classes are as equal as possible: (K,) counts → (K,) quotas
    summing to min(n, counts.sum()); a class with too few pixels gives all of them, the rest is shared."""
    quota = np.zeros_like(counts)
    left, order = int(n), np.argsort(counts, kind="stable")
    for j, c in enumerate(order):
        take = min(int(counts[c]), left // max(1, len(order) - j))
        quota[c], left = take, left - take
    return quota


def bane_roles(pixels: LayerPixels, bane_percent: float = 50.0) -> np.ndarray:
    """(h, w) role of every cell: CORRECT, HARD (a BANE-kept error cell: predicted n, truth another class, in
    the lowest K_s % of distances to its error region's edge), FAR_ERROR (other error cells) or UNLABELLED."""
    truth = torch.as_tensor(pixels.truth)[None]
    pred = torch.as_tensor(pixels.prediction)[None]
    sel = bane_negatives(pred, truth, bane_percent, IGNORE_INDEX)
    role = np.full(pixels.grid, CORRECT, np.int64)
    role[sel.error[0].numpy()] = FAR_ERROR
    role[sel.keep[0].numpy()] = HARD
    role[pixels.truth == IGNORE_INDEX] = UNLABELLED
    return role


def sample_pixels(images: Sequence[LayerPixels], layer: int, n: int, seed: int = 0, num_classes: int | None = None,
                  w_h: float = 0.5) -> PixelSample:
    """A class-balanced sample of `n` cells over `images` (all at layer `layer`), uniform within each class.

    Balanced by ground truth when the images are labelled (unlabelled cells are left out), else by the
    prediction. The draw depends only on the grids, the labels and `seed`, so two checkpoints with the
    same encoder strides get exactly the same cells (`features_at` reads the other model's features there).
    """
    n = check_sample_size(n)
    if not images:
        raise ValueError("no images to sample pixels from")
    labelled = all(p.labelled for p in images)
    key = [p.truth if labelled else p.prediction for p in images]
    k = int(num_classes) if num_classes is not None else 1 + max(int(np.where(c == IGNORE_INDEX, -1, c).max())
                                                                  for c in key)
    image_idx = np.concatenate([np.full(c.size, i, np.int64) for i, c in enumerate(key)])
    flat = np.concatenate([np.arange(c.size, dtype=np.int64) for c in key])
    cls = np.concatenate([c.ravel() for c in key])
    valid = (cls != IGNORE_INDEX) & (cls >= 0) & (cls < k)
    image_idx, flat, cls = image_idx[valid], flat[valid], cls[valid]
    if cls.size == 0:
        raise ValueError("none of the chosen images has a labelled pixel on this layer's grid")
    rng = np.random.default_rng(int(seed))
    quota = balanced_quota(np.bincount(cls, minlength=k), n)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(cls == c))[: quota[c]] for c in range(k)])
    chosen.sort()  # grouped by image, then raster order: a stable, readable order
    img, idx = image_idx[chosen], flat[chosen]
    grids = [p.grid for p in images]
    widths = np.array([g[1] for g in grids])[img]
    gy, gx = idx // widths, idx % widths
    features = features_at(images, img, gy, gx)
    truth = np.array([images[i].truth[y, x] for i, y, x in zip(img, gy, gx)], np.int64)
    pred = np.array([images[i].prediction[y, x] for i, y, x in zip(img, gy, gx)], np.int64)
    roles = [bane_roles(p) if labelled else np.full(p.grid, UNLABELLED, np.int64) for p in images]
    role = np.array([roles[i][y, x] for i, y, x in zip(img, gy, gx)], np.int64)
    anchors, anchor_classes = layer_anchors(images, k, w_h) if labelled else (np.zeros((0, features.shape[1]),
                                                                                       np.float32), np.zeros(0, np.int64))
    return PixelSample(layer=int(layer), features=features, image=img, gy=gy, gx=gx, truth=truth, prediction=pred,
                       role=role, grids=grids, sizes=[p.size for p in images], anchors=anchors,
                       anchor_classes=anchor_classes, balanced_by="ground truth" if labelled else "prediction",
                       available=int(cls.size))


def features_at(images: Sequence[LayerPixels], image: np.ndarray, gy: np.ndarray, gx: np.ndarray) -> np.ndarray:
    """(N, D) float32: the embedding of cell (gy, gx) of image `image` for every point."""
    out = np.empty((image.size, images[0].embeddings.shape[0]), np.float32)
    for i, p in enumerate(images):
        m = image == i
        out[m] = p.embeddings[:, gy[m], gx[m]].T
    return out


def same_pixels(sample: PixelSample, images: Sequence[LayerPixels]) -> PixelSample:
    """`sample`'s exact cells read from another model's `images` (same images, same layer): for side-by-side
    views of two checkpoints. Raises ValueError when that model's grid differs."""
    grids = [p.grid for p in images]
    if grids != sample.grids:
        raise ValueError(f"the two models have different grids at {LAYER_NAMES[sample.layer]} ({sample.grids[0]} vs "
                         f"{grids[0]}), so their pixels cannot be matched one to one")
    pred = np.array([images[i].prediction[y, x] for i, y, x in zip(sample.image, sample.gy, sample.gx)], np.int64)
    labelled = sample.balanced_by == "ground truth"
    roles = [bane_roles(p) if labelled else np.full(p.grid, UNLABELLED, np.int64) for p in images]
    role = np.array([roles[i][y, x] for i, y, x in zip(sample.image, sample.gy, sample.gx)], np.int64)
    k = int(max(sample.truth.max(initial=0), sample.prediction.max(initial=0), pred.max(initial=0)) + 1)
    anchors, anchor_classes = layer_anchors(images, max(k, int(sample.anchor_classes.max(initial=-1)) + 1)) \
        if labelled else (np.zeros((0, sample.features.shape[1]), np.float32), np.zeros(0, np.int64))
    return PixelSample(layer=sample.layer, features=features_at(images, sample.image, sample.gy, sample.gx),
                       image=sample.image, gy=sample.gy, gx=sample.gx, truth=sample.truth, prediction=pred,
                       role=role, grids=grids, sizes=sample.sizes, anchors=anchors, anchor_classes=anchor_classes,
                       balanced_by=sample.balanced_by, available=sample.available)


def layer_anchors(images: Sequence[LayerPixels], num_classes: int, w_h: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The loss's anchors over these images: class means a_i^n at the layer and a_I^n at the deepest layer,
    â_i^n = (1 − w_h)·a_i^n + w_h·a_I^n, L2-normalised (METHOD.md §2). → (A, D) anchors, (A,) their classes."""
    means = torch.zeros(num_classes, images[0].embeddings.shape[0])
    counts = torch.zeros(num_classes, dtype=torch.long)
    deep = torch.zeros(num_classes, images[0].deep.shape[0])
    deep_counts = torch.zeros(num_classes, dtype=torch.long)
    for p in images:  # images may differ in size, so sum per image instead of one batch
        m, c = class_means(torch.as_tensor(p.embeddings)[None], torch.as_tensor(p.truth)[None], num_classes)
        means, counts = means + m * c[:, None], counts + c
        m, c = class_means(torch.as_tensor(p.deep)[None], torch.as_tensor(p.deep_truth)[None], num_classes)
        deep, deep_counts = deep + m * c[:, None], deep_counts + c
    means = means / counts.clamp(min=1)[:, None]
    deep = deep / deep_counts.clamp(min=1)[:, None]
    anchors = contextual_update(means, counts > 0, deep, deep_counts > 0, float(w_h))
    present = torch.nonzero(counts > 0).squeeze(1)
    return anchors[present].numpy().astype(np.float32), present.numpy().astype(np.int64)


# ------------------------------------------------------------------------------------------ provenance


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


# ------------------------------------------------------------------------------------------ projections


@dataclass
class Projection:
    """coords (N, 2) of the points and anchor_coords (A, 2) of the anchors, in one plane."""

    method: str
    coords: np.ndarray
    anchor_coords: np.ndarray
    seconds: float
    settings: dict[str, object] = field(default_factory=dict)


def _stacked(sample: PixelSample) -> np.ndarray:
    return np.concatenate([sample.features, sample.anchors]).astype(np.float32)


def pca_project(sample: PixelSample) -> Projection:
    """The top two principal components (scikit-learn PCA, exact covariance solver: deterministic)."""
    from sklearn.decomposition import PCA

    start = time.perf_counter()
    x = _stacked(sample)
    z = PCA(2, svd_solver="covariance_eigh").fit_transform(x).astype(np.float32)
    n = len(sample)
    return Projection("PCA", z[:n], z[n:], time.perf_counter() - start)


def umap_epochs(n: int) -> int:
    """Fewer epochs for bigger samples: each epoch costs ~n·n_neighbours updates, and large maps settle sooner."""
    return 200 if n <= 5_000 else 100 if n <= 12_000 else 80


def umap_project(sample: PixelSample, seed: int = 0, n_epochs: int | None = None, n_neighbors: int = UMAP_NEIGHBOURS,
                 show_epochs: bool = False) -> Projection:
    """UMAP (umap-learn) of the points and anchors.

    Speed choices (benchmarks/umap_speed.py): the features are first reduced to PCA_DIMS principal
    components; init="pca" (deterministic, far cheaper than the spectral init); low_memory NN-descent;
    n_neighbors 10; epochs from `umap_epochs`. umap's `random_state` would force a single thread, so it
    is left unset and the global NumPy generator is seeded instead: the initialisation is fixed, the
    parallel SGD may still vary slightly between runs (the app caches each layout per seed).
    `show_epochs` turns on umap's own tqdm epoch bar (written to a sink) so a caller can track it.
    """
    import umap
    from sklearn.decomposition import PCA

    start = time.perf_counter()
    x = _stacked(sample)
    if x.shape[0] < 3:
        raise ValueError("UMAP needs at least 3 points")
    dims = min(PCA_DIMS, x.shape[1], x.shape[0])
    z = PCA(dims, svd_solver="covariance_eigh").fit_transform(x).astype(np.float32)
    epochs = int(n_epochs) if n_epochs is not None else umap_epochs(x.shape[0])
    np.random.seed(int(seed) % 2**32)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(int(n_neighbors), x.shape[0] - 1), n_epochs=epochs,
                        init="pca", low_memory=True, n_jobs=-1, force_approximation_algorithm=True,
                        tqdm_kwds={"disable": not show_epochs, "file": io.StringIO()})
    coords = reducer.fit_transform(z).astype(np.float32)
    n = len(sample)
    return Projection("UMAP", coords[:n], coords[n:], time.perf_counter() - start,
                      dict(n_epochs=epochs, n_neighbors=reducer.n_neighbors, pca_dims=dims))


_warm = threading.Event()


def warm_up_umap() -> float:
    """Compile umap's numba kernels (NN-descent, fuzzy set, SGD) on a tiny random fit; returns seconds.
    The same code path as `umap_project`, so a later real call finds everything compiled."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    n, d = 300, 16
    fake = PixelSample(layer=0, features=rng.normal(size=(n, d)).astype(np.float32), image=np.zeros(n, np.int64),
                       gy=np.zeros(n, np.int64), gx=np.zeros(n, np.int64), truth=np.zeros(n, np.int64),
                       prediction=np.zeros(n, np.int64), role=np.zeros(n, np.int64), grids=[(1, 1)], sizes=[(1, 1)],
                       anchors=np.zeros((0, d), np.float32), anchor_classes=np.zeros(0, np.int64),
                       balanced_by="prediction", available=n)
    umap_project(fake, n_epochs=5)
    _warm.set()
    return time.perf_counter() - start


def warm_up_in_background() -> threading.Thread:
    """Start `warm_up_umap` in a daemon thread (at app start-up, so no user's first click pays for it)."""
    thread = threading.Thread(target=warm_up_umap, name="umap-warm-up", daemon=True)
    thread.start()
    return thread


def umap_is_warm() -> bool:
    return _warm.is_set()


# ------------------------------------------------------------------------------------------ drawing


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

