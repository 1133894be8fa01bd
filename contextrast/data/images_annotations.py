"""The layout ADE20K and COCO-Stuff share: `<root>/images/<folder>/*.jpg` with
`<root>/annotations/<folder>/<stem><label suffix>`, the root given directly or as its parent folder."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from contextrast.data.base import SegmentationDataset, Transform, check_split
from contextrast.data.files import first_existing, pair_files, require_dir
from contextrast.data.info import DatasetInfo
from contextrast.data.io import LabelTransform


class ImagesAnnotationsDataset(SegmentationDataset):
    """Subclasses set `info`, `split_folders` ({split: folder}), `label_suffix`, `root_folders` (where the layout
    may sit below the given root), `label_map()` and `layout()` (the expected layout, for error messages)."""

    needs_root = True
    info: ClassVar[DatasetInfo]
    split_folders: ClassVar[dict[str, str]]
    label_suffix: ClassVar[str] = ".png"
    root_folders: ClassVar[tuple[str, ...]] = ("",)
    title: ClassVar[str]  # the dataset's name in messages

    @classmethod
    def layout(cls, split: str = "train") -> str:
        raise NotImplementedError

    @classmethod
    def label_map(cls) -> LabelTransform:
        raise NotImplementedError

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        check_split(self.info.name, split, tuple(self.split_folders))
        layout = self.layout(split)
        given = require_dir(Path(root).expanduser(), f"{self.title} root", layout)
        root = first_existing(tuple(given / sub for sub in self.root_folders), "images") or given
        folder = self.split_folders[split]
        pairs = pair_files(root / "images" / folder, "*.jpg",
                           lambda image: root / "annotations" / folder / f"{image.stem}{self.label_suffix}", layout)
        super().__init__(self.info, split, transform, pairs, self.label_map())
        self.root = root
