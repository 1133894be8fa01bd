"""ADE20K (SceneParsing150, ADEChallengeData2016): 150 classes, reduce-zero-label (0 → 255, k → k-1)."""

from __future__ import annotations

from pathlib import Path

from contextrast.data.base import SegmentationDataset, Transform, check_split
from contextrast.data.classes import ADE20K
from contextrast.data.files import first_existing, pair_files, require_dir
from contextrast.data.io import reduce_zero_label
from contextrast.data.registry import DATASETS

SPLIT_FOLDERS = {"train": "training", "val": "validation"}


def layout(split: str = "train") -> str:
    folder = SPLIT_FOLDERS.get(split, "training")
    return (f"expected <root>/images/{folder}/ADE_*.jpg and <root>/annotations/{folder}/ADE_*.png, with <root> "
            "the ADEChallengeData2016 folder or its parent (ADE20K layout)")


@DATASETS.register("ade20k")
class ADE20KDataset(SegmentationDataset):
    needs_root = True
    splits = tuple(SPLIT_FOLDERS)

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        check_split("ade20k", split, tuple(SPLIT_FOLDERS))
        given = require_dir(Path(root).expanduser(), "ADE20K root", layout(split))
        root = first_existing((given / "ADEChallengeData2016", given), "images") or given
        folder = SPLIT_FOLDERS[split]
        pairs = pair_files(root / "images" / folder, "*.jpg",
                           lambda image: root / "annotations" / folder / f"{image.stem}.png", layout(split))
        super().__init__(ADE20K, split, transform, pairs, reduce_zero_label(ADE20K.num_classes))
        self.root = root
