"""A procedural toy dataset: textured shapes with thin bars and touching boundaries, made by code.

For tests, teaching and the offline demo: no download, and sample i of a split is always the
same picture (its random generator is seeded from seed, split and index). Five classes:
background, disc, rectangle, bar (1–3 px wide lines: the thin structures SRM is meant to keep,
METHOD.md §1), triangle. A disc always straddles a rectangle's edge, so every picture has
boundaries between two objects, where BANE's hard negatives live (METHOD.md §2). Colours are
drawn around a per-class hue with a wide spread, plus texture and noise, so colour alone is not
a perfect cue and shape must be learnt.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from contextrast import limits
from contextrast.data.base import SegmentationDataset, Transform, check_split
from contextrast.data.info import DatasetInfo
from contextrast.data.registry import DATASETS

BACKGROUND, DISC, RECTANGLE, BAR, TRIANGLE = range(5)
TOY = DatasetInfo(
    name="toy",
    classes=("background", "disc", "rectangle", "bar", "triangle"),
    palette=((90, 90, 90), (230, 70, 70), (70, 180, 80), (250, 220, 40), (60, 110, 230)),
)
SPLIT_LENGTHS = {"train": 256, "val": 64, "test": 64}
DEFAULT_SIZE = (128, 160)
MAX_LENGTH = 1_000_000  # pictures per split: each is drawn on demand, but a count must stay countable
# mean fill colour per class; objects draw around it with a wide spread so classes overlap in colour
CLASS_COLOURS = {DISC: (190, 90, 90), RECTANGLE: (90, 170, 90), BAR: (200, 190, 80), TRIANGLE: (90, 110, 190)}
COLOUR_SPREAD = 45.0
MIN_PIXELS = {DISC: 40, RECTANGLE: 40, BAR: 12, TRIANGLE: 40}


def _texture(rng: np.random.Generator, h: int, w: int, amplitude: float) -> np.ndarray:
    """(h, w) float texture: smooth blotches plus stripes of random frequency and direction."""
    coarse = rng.normal(0.0, 1.0, (rng.integers(3, 7), rng.integers(3, 7))).astype(np.float32)
    blotches = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 14)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    return amplitude * (0.6 * blotches + 0.4 * rng.uniform(0, 1) * stripes)


def _fill(image: np.ndarray, region: np.ndarray, rng: np.random.Generator, mean: tuple[int, int, int]) -> None:
    colour = np.clip(np.asarray(mean, np.float32) + rng.normal(0, COLOUR_SPREAD, 3), 20, 235)
    texture = _texture(rng, *image.shape[:2], amplitude=rng.uniform(8, 30))
    image[region] = colour + texture[region][:, None]


def _draw(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """One attempt at a picture: (H, W, 3) float image and (H, W) uint8 labels."""
    image = np.empty((h, w, 3), np.float32)
    labels = np.zeros((h, w), np.uint8)
    _fill(image, np.ones((h, w), bool), rng, tuple(rng.integers(50, 200, 3)))
    side = min(h, w)

    def paint(cls: int, draw: Any) -> None:
        canvas = np.zeros((h, w), np.uint8)
        draw(canvas)
        region = canvas > 0
        labels[region] = cls
        _fill(image, region, rng, CLASS_COLOURS[cls])

    # a (possibly rotated) rectangle, then a disc centred on one of its edges: a guaranteed shared boundary
    centre = (rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h)
    box = ((float(centre[0]), float(centre[1])), (rng.uniform(0.25, 0.45) * w, rng.uniform(0.25, 0.45) * h),
           float(rng.choice([0.0, rng.uniform(-40, 40)])))
    corners = cv2.boxPoints(box)
    paint(RECTANGLE, lambda c: cv2.fillPoly(c, [np.round(corners).astype(np.int32)], 1))
    a = int(rng.integers(4))
    t = rng.uniform(0.25, 0.75)
    on_edge = corners[a] + t * (corners[(a + 1) % 4] - corners[a])
    radius = int(rng.uniform(0.09, 0.17) * side)
    paint(DISC, lambda c: cv2.circle(c, tuple(int(v) for v in np.round(on_edge)), radius, 1, -1))
    # extra shapes anywhere, in random order, occluding what lies beneath
    for cls in rng.permutation([DISC, RECTANGLE, TRIANGLE, TRIANGLE]):
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        if cls == DISC:
            r = int(rng.uniform(0.06, 0.14) * side)
            paint(DISC, lambda c, cx=cx, cy=cy, r=r: cv2.circle(c, (int(cx), int(cy)), r, 1, -1))
        elif cls == RECTANGLE:
            rw, rh = rng.uniform(0.1, 0.25) * w, rng.uniform(0.1, 0.25) * h
            pts = np.round(cv2.boxPoints(((cx, cy), (rw, rh), float(rng.uniform(-45, 45))))).astype(np.int32)
            paint(RECTANGLE, lambda c, pts=pts: cv2.fillPoly(c, [pts], 1))
        else:
            r = rng.uniform(0.1, 0.2) * side
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.4, 0.4, 3)
            pts = np.round(np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)).astype(np.int32)
            paint(TRIANGLE, lambda c, pts=pts: cv2.fillPoly(c, [pts], 1))
    # thin bars last, so they stay whole: long 1–3 px lines across the picture
    for _ in range(int(rng.integers(1, 4))):
        a0, a1, b0 = rng.uniform(0.05, 0.45), rng.uniform(0.55, 0.95), rng.uniform(0.05, 0.95, 2)
        if rng.uniform() < 0.5:  # left to right
            p0, p1 = (int(a0 * w), int(b0[0] * h)), (int(a1 * w), int(b0[1] * h))
        else:  # top to bottom
            p0, p1 = (int(b0[0] * w), int(a0 * h)), (int(b0[1] * w), int(a1 * h))
        thickness = int(rng.integers(1, 4))
        paint(BAR, lambda c, p0=p0, p1=p1, k=thickness: cv2.line(c, p0, p1, 1, k))
    return image, labels


def _acceptable(labels: np.ndarray) -> bool:
    counts = np.bincount(labels.ravel(), minlength=len(TOY.classes))
    return all(counts[cls] >= n for cls, n in MIN_PIXELS.items())


def render(seed: int | Sequence[int], size: tuple[int, int] = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The toy picture for `seed`: (H, W, 3) uint8 RGB and (H, W) uint8 labels in 0..4, all classes present."""
    h, w = size
    rng = np.random.default_rng(seed)
    for _ in range(20):  # rare occlusions can hide a class; redraw (still deterministic in the seed)
        image, labels = _draw(rng, h, w)
        if _acceptable(labels):
            break
    image = cv2.GaussianBlur(image, (3, 3), 0.7) + rng.normal(0, 8, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _parse_size(value: str) -> tuple[int, int]:
    parts = value.lower().split("x")
    try:
        h, w = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except ValueError:
        raise ValueError(f"toy size must be HxW or one number, e.g. size=96x128; got {value!r}") from None
    if len(parts) > 2 or min(h, w) < 32:
        raise ValueError(f"toy size must be HxW with both at least 32, e.g. size=96x128; got {value!r}")
    return h, w


@DATASETS.register("toy")
class ToyDataset(SegmentationDataset):
    """Generated on the fly. Options (spec `toy:n=64,size=96x128,seed=1`): n = length of the split
    (default train 256, val/test 64), size = HxW (default 128x160), seed = base seed (default 0)."""

    needs_root = False
    splits = tuple(SPLIT_LENGTHS)
    OPTIONS = ("n", "size", "seed")

    def __init__(self, split: str = "train", transform: Transform | None = None, n: int | str | None = None,
                 size: tuple[int, int] | str = DEFAULT_SIZE, seed: int | str = 0) -> None:
        check_split("toy", split, tuple(SPLIT_LENGTHS))
        super().__init__(TOY, split, transform)
        try:
            self.length = SPLIT_LENGTHS[split] if n is None else int(n)
            self.seed = int(seed)
        except ValueError:
            raise ValueError(f"toy options n and seed must be integers; got n={n!r}, seed={seed!r}") from None
        if self.length < 1:
            raise ValueError(f"toy option n must be positive; got {self.length}")
        if self.length > MAX_LENGTH:
            raise ValueError(f"toy option n must be at most {MAX_LENGTH}; got {self.length}")
        self.size = _parse_size(size) if isinstance(size, str) else (int(size[0]), int(size[1]))
        limits.check_image_size(self.size[1], self.size[0], f"a toy picture of size {self.size[0]}x{self.size[1]}")

    def __len__(self) -> int:
        return self.length

    def sample_seed(self, index: int) -> list[int]:
        return [self.seed, zlib.crc32(self.split.encode()), index]

    def sample_name(self, index: int) -> str:
        return f"{self.split}_{index:05d}"

    def image_size(self, index: int) -> tuple[int, int]:
        return self.size

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for toy/{self.split} with {self.length} samples")
        return render(self.sample_seed(index), self.size)
