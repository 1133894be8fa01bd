"""Which pixels the embedding view shows: one layer's embeddings, truth and prediction on its grid
(`LayerPixels`), a class-balanced sample of grid cells with their provenance (`PixelSample`), the BANE
role of each cell, and the anchors fitted with them (METHOD.md §2 "Embeddings", "Representative anchors").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from contextrast.analysis.forward import ModelRun
from contextrast.config import IGNORE_INDEX, LossConfig
from contextrast.losses.anchors import class_means, contextual_update
from contextrast.losses.bane import bane_negatives
from contextrast.losses.grid import nearest_resize, prediction_at

LAYER_NAMES = ("E1 (1/4)", "E2 (1/8)", "E3 (1/16)", "E4 (1/32)")
MIN_POINTS, MAX_POINTS = 100, 30_000
# BANE role of a labelled pixel at its layer (METHOD.md §2 "BANE"), with K_s = 50 %
CORRECT, HARD, FAR_ERROR, UNLABELLED = range(4)


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


def bane_roles(pixels: LayerPixels, bane_percent: float = 50.0, rule: str = "percentile", seed: int = 0) -> np.ndarray:
    """(h, w) role of every cell: CORRECT, HARD (a BANE-kept error cell: predicted n, truth another class, among
    the K_s % of error cells nearest their error region's edge by the loss's `rule`, distances on the layer's
    grid), FAR_ERROR (other error cells) or UNLABELLED."""
    truth = torch.as_tensor(pixels.truth)[None]
    pred = torch.as_tensor(pixels.prediction)[None]
    sel = bane_negatives(pred, truth, bane_percent, IGNORE_INDEX, rule=rule,
                         generator=torch.Generator().manual_seed(int(seed)))
    role = np.full(pixels.grid, CORRECT, np.int64)
    role[sel.error[0].numpy()] = FAR_ERROR
    role[sel.keep[0].numpy()] = HARD
    role[pixels.truth == IGNORE_INDEX] = UNLABELLED
    return role


def sample_pixels(images: Sequence[LayerPixels], layer: int, n: int, seed: int = 0, num_classes: int | None = None,
                  w_h: float = 0.5, loss: LossConfig | None = None) -> PixelSample:
    """A class-balanced sample of `n` cells over `images` (all at layer `layer`), uniform within each class.
    `loss`: the model's loss settings (w_h for the anchors, K_s and BANE's rule for the roles); else `w_h` and
    the defaults.

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
    roles = [_roles(p, loss, seed) if labelled else np.full(p.grid, UNLABELLED, np.int64) for p in images]
    role = np.array([roles[i][y, x] for i, y, x in zip(img, gy, gx)], np.int64)
    w_h = loss.w_h if loss is not None else w_h
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


def _roles(pixels: LayerPixels, loss: LossConfig | None, seed: int) -> np.ndarray:
    if loss is None:
        return bane_roles(pixels)
    return bane_roles(pixels, loss.bane_percent, loss.bane_rule, seed)


def same_pixels(sample: PixelSample, images: Sequence[LayerPixels], loss: LossConfig | None = None,
                seed: int = 0) -> PixelSample:
    """`sample`'s exact cells read from another model's `images` (same images, same layer): for side-by-side
    views of two checkpoints; `loss`: that model's loss settings. Raises ValueError when its grid differs."""
    grids = [p.grid for p in images]
    if grids != sample.grids:
        raise ValueError(f"the two models have different grids at {LAYER_NAMES[sample.layer]} ({sample.grids[0]} vs "
                         f"{grids[0]}), so their pixels cannot be matched one to one")
    pred = np.array([images[i].prediction[y, x] for i, y, x in zip(sample.image, sample.gy, sample.gx)], np.int64)
    labelled = sample.balanced_by == "ground truth"
    roles = [_roles(p, loss, seed) if labelled else np.full(p.grid, UNLABELLED, np.int64) for p in images]
    role = np.array([roles[i][y, x] for i, y, x in zip(sample.image, sample.gy, sample.gx)], np.int64)
    k = int(max(sample.truth.max(initial=0), sample.prediction.max(initial=0), pred.max(initial=0)) + 1)
    anchors, anchor_classes = layer_anchors(images, max(k, int(sample.anchor_classes.max(initial=-1)) + 1),
                                            loss.w_h if loss is not None else 0.5) \
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
