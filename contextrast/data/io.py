"""Reading images and label maps from disk, and mapping raw label values to 0..K-1 / 255."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np

from contextrast.config import IGNORE_INDEX

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file → (H, W, 3) uint8 RGB (cv2 reads BGR; grey and alpha are converted)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path} (missing, or not an image format OpenCV reads)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    """A label file read unchanged: (H, W) integer values, or (H, W, 3) BGR for colour-coded masks."""
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise FileNotFoundError(f"cannot read label map {path} (missing, or not an image format OpenCV reads)")
    if label.ndim == 3 and label.shape[2] == 4:
        label = label[..., :3]
    return label


def check_same_size(image: np.ndarray, label: np.ndarray, label_path: str | Path) -> None:
    if image.shape[:2] != label.shape[:2]:
        raise ValueError(f"label map {label_path} is {label.shape[1]}x{label.shape[0]} (WxH) but its image is "
                         f"{image.shape[1]}x{image.shape[0]}; labels must match their image pixel for pixel")


class LabelMap:
    """Raw label value → 0..K-1 or 255, as a lookup table; values without an entry become 255.

    `mapping` gives explicit raw → train value pairs; values it omits keep their number when below
    `num_classes` (identity) unless `identity=False`, and everything else is ignored (255).
    """

    def __init__(self, num_classes: int, mapping: Mapping[int, int] | None = None, identity: bool = True) -> None:
        self.num_classes = num_classes
        self.mapping = dict(mapping or {})
        self.identity = identity
        self._tables: dict[int, np.ndarray] = {}

    def _table(self, size: int) -> np.ndarray:
        if size not in self._tables:
            table = np.full(size, IGNORE_INDEX, np.uint8)
            if self.identity:
                table[: min(size, self.num_classes)] = np.arange(min(size, self.num_classes))
            for raw, value in self.mapping.items():
                if 0 <= raw < size:
                    table[raw] = value
            self._tables[size] = table
        return self._tables[size]

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """(H, W) integer array → (H, W) uint8 with values in 0..K-1 ∪ {255}."""
        if raw.ndim != 2:
            raise ValueError(f"expected a single-channel label map; got shape {raw.shape}")
        if raw.dtype == np.uint8:
            return self._table(256)[raw]
        if raw.dtype == np.uint16:
            return self._table(65536)[raw]
        raw = raw.astype(np.int64)
        size = int(max(raw.max(initial=0), 255)) + 1
        return self._table(size)[np.clip(raw, 0, size - 1)]


def reduce_zero_label(num_classes: int) -> LabelMap:
    """ADE20K / PASCAL-Context convention: 0 (background/other) → 255, k → k-1, 255 stays 255."""
    return LabelMap(num_classes, {k: k - 1 for k in range(1, num_classes + 1)}, identity=False)


LabelTransform = Callable[[np.ndarray], np.ndarray]
