"""The dataset every layout produces: a list of (image, label) files, a label map and a transform."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from contextrast.data.info import DatasetInfo
from contextrast.data.io import LabelTransform, check_same_size, image_size, read_label, read_rgb
from contextrast.data.transforms import normalize

Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def check_split(dataset: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise ValueError(f"unknown split {split!r} for {dataset}; available splits: {', '.join(allowed)}")


class SegmentationDataset(Dataset):
    """Samples as dicts: image float32 (3, H, W) ImageNet-normalised, mask int64 (H, W) in 0..K-1 ∪ {255}.

    Subclasses fill `self.samples` (image path, label path) or override `load`. `load(i)` gives the
    raw picture for display: (H, W, 3) uint8 RGB and (H, W) uint8 labels, already mapped to 0..K-1/255.
    """

    info: DatasetInfo
    needs_root: ClassVar[bool] = True  # False for generated datasets (spec `name:key=value,...` instead of a root)
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")  # the split names a layout knows

    def __init__(self, info: DatasetInfo, split: str, transform: Transform | None = None,
                 samples: Sequence[tuple[Path, Path]] = (), label_map: LabelTransform | None = None) -> None:
        self.info = info
        self.split = split
        self.transform = transform
        self.samples = list(samples)
        self.label_map = label_map

    def sample_name(self, index: int) -> str:
        """A short, unique name for sample `index` (the image file stem unless a layout says otherwise)."""
        return Path(self.samples[index][0]).stem

    @property
    def names(self) -> list[str]:
        return [self.sample_name(i) for i in range(len(self))]

    def __len__(self) -> int:
        return len(self.samples)

    def image_size(self, index: int) -> tuple[int, int]:
        """(H, W) of sample `index`'s picture, read from its file header (no decoding when possible)."""
        return image_size(self.samples[index][0])

    def load_image(self, index: int) -> np.ndarray:
        """Sample `index`'s picture alone, (H, W, 3) uint8 RGB: its label map is not read (thumbnails). A layout
        that overrides `load` (one without `self.samples`, e.g. a generated one) gives `load`'s picture."""
        if type(self).load is not SegmentationDataset.load:
            return self.load(index)[0]
        return read_rgb(self.samples[index][0])

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.samples[index]
        rgb = read_rgb(image_path)
        raw = read_label(label_path)
        check_same_size(rgb, raw, label_path)
        mask = self.label_map(raw) if self.label_map is not None else raw
        if mask.ndim != 2:
            raise ValueError(f"label map {label_path} has {mask.shape[2]} channels; expected single-channel label ids")
        return rgb, mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {self.info.name}/{self.split} with {len(self)} samples")
        index = index % len(self)
        rgb, mask = self.load(index)
        if self.transform is not None:
            rgb, mask = self.transform(rgb, mask)
        return {
            "image": normalize(rgb),
            "mask": torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64)),
            "index": index,
            "name": self.sample_name(index),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.name}, split={self.split!r}, {len(self)} samples)"
