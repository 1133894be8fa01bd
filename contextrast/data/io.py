"""Reading images and label maps from disk, and mapping raw label values to 0..K-1 / 255.

Every read checks the size a file declares in its header against `contextrast.limits` before a pixel
is decoded, so a small file claiming an enormous picture is refused instead of exhausting memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from contextrast import limits
from contextrast.config import IGNORE_INDEX

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def declared_size(path: str | Path) -> tuple[int, int] | None:
    """(H, W) that an image file's header declares, read without decoding; None for a format the
    header reader does not know (OpenCV may still read it). FileNotFoundError when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: the bound that counts is checked below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
    except Image.DecompressionBombError:
        raise ValueError(f"{path} declares an image far larger than this lab decodes") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return int(h), int(w)


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file, from its header when possible (else by decoding it)."""
    size = declared_size(path)
    return size if size is not None else tuple(read_rgb(path).shape[:2])  # type: ignore[return-value]


def _read(path: str | Path, flags: int, what: str) -> np.ndarray:
    size = declared_size(path)
    if size is not None:
        limits.check_image_size(size[1], size[0], f"{what} {path}")
    try:
        image = cv2.imread(str(path), flags)
    except cv2.error as e:
        raise ValueError(f"cannot decode {what} {path}: {str(e).strip().splitlines()[-1]}") from None
    if image is None:
        raise FileNotFoundError(f"cannot read {what} {path} (missing, or not an image format OpenCV reads)")
    limits.check_image_size(image.shape[1], image.shape[0], f"{what} {path}")
    return image


# OpenCV ≥ 4.10 decodes straight to RGB (a fifth of a CamVid picture's read time less than BGR and a conversion)
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file → (H, W, 3) uint8 RGB (grey and alpha are converted)."""
    if _IMREAD_RGB is not None:
        return _read(path, _IMREAD_RGB, "image")
    return cv2.cvtColor(_read(path, cv2.IMREAD_COLOR, "image"), cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    """A label file read unchanged: (H, W) integer values, or (H, W, 3) BGR for colour-coded masks."""
    label = _read(path, cv2.IMREAD_UNCHANGED, "label map")
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
