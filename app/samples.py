"""Labelled samples the lab can show without any upload: the built-in toy set, and optionally one
split of a dataset given with `--data SPEC` (listed first). Names look like `toy/val_00003`."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.state import LRU
from contextrast.data import SegmentationDataset, build_dataset
from contextrast.data.info import DatasetInfo

UPLOAD = "(your upload)"
SPLIT_PREFERENCE = ("val", "test", "train")
THUMB_HEIGHT = 72  # px
MAX_THUMBS = 60  # per set: the dropdown lists them all


@dataclass
class SampleSet:
    label: str  # shown before each sample name, e.g. "toy" or "camvid:val"
    dataset: SegmentationDataset


class Samples:
    """Browsable labelled samples: `names()` for a dropdown, `load(name)` → (rgb, labels, dataset info).

    At most `limit` samples per set are listed, so a big split does not make a huge dropdown.
    """

    def __init__(self, data_spec: str | None = None, toy_spec: str | None = "toy", limit: int = 200) -> None:
        self.sets: list[SampleSet] = []
        self.limit = limit
        # the dataset the user asked for comes first: the page opens on one of its images, and on a model
        # that predicts its classes (app.first_page.default_model)
        if data_spec:
            self.sets.append(self._open(data_spec))
        if toy_spec:
            self.sets.append(SampleSet("toy", build_dataset(toy_spec, "val")))
        self._index: dict[str, tuple[SampleSet, int]] = {}
        self._thumbnails = LRU(max(1, len(self.sets)))  # set label → its thumbnails, made once per set
        for s in self.sets:
            for i in range(min(len(s.dataset), limit)):
                self._index[f"{s.label}/{s.dataset.sample_name(i)}"] = (s, i)

    @staticmethod
    def _open(spec: str) -> SampleSet:
        errors = []
        for split in SPLIT_PREFERENCE:
            try:
                ds = build_dataset(spec, split)
            except ValueError as e:  # this split does not exist for this dataset
                errors.append(str(e))
                continue
            if len(ds):
                return SampleSet(f"{ds.info.name}:{split}", ds)
        raise ValueError(f"dataset {spec!r} has no usable split among {', '.join(SPLIT_PREFERENCE)}: "
                         + "; ".join(errors))

    def names(self) -> list[str]:
        return list(self._index)

    def set_labels(self) -> list[str]:
        return [s.label for s in self.sets]

    def set_of(self, name: str | None) -> str | None:
        """The set label a listed sample belongs to (None for anything else, e.g. an upload)."""
        return self._index[name][0].label if name in self._index else None

    def names_in_set(self, label: str | None) -> list[str]:
        """The listed samples of one set, in order (the first set's for an unknown label)."""
        label = label if label in self.set_labels() else next(iter(self.set_labels()), None)
        return [n for n, (s, _) in self._index.items() if s.label == label]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def thumbnails(self, label: str | None) -> list[tuple[str, np.ndarray]]:
        """(name, picture THUMB_HEIGHT px high) of the first MAX_THUMBS samples of a set (the first set's for an
        unknown label), decoded once; a second caller waits for the first instead of decoding them again."""
        names = self.names_in_set(label)[:MAX_THUMBS]
        key = self.set_of(names[0]) if names else ""
        return self._thumbnails.get_or_make(key, lambda: [(n, thumbnail(self._picture(n))) for n in names])

    def _picture(self, name: str) -> np.ndarray:
        s, i = self._index[name]
        return s.dataset.load_image(i)

    def load(self, name: str) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
        if name not in self._index:
            raise ValueError(f"unknown sample {name!r}; pick one from the list or upload an image")
        s, i = self._index[name]
        rgb, mask = s.dataset.load(i)
        return rgb, np.asarray(mask).astype(np.int64), s.dataset.info


def thumbnail(rgb: np.ndarray, height: int = THUMB_HEIGHT) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
