"""BDD100K semantic segmentation (10k images, Cityscapes' 19 classes, 255 ignore)."""

from __future__ import annotations

from pathlib import Path

from contextrast.data.base import SegmentationDataset, Transform, check_split
from contextrast.data.classes import BDD100K
from contextrast.data.files import first_existing, pair_files, require_dir
from contextrast.data.io import LabelMap
from contextrast.data.registry import DATASETS

SPLITS = ("train", "val")


def layout(split: str = "train") -> str:
    return (f"expected <root>/images/10k/{split}/*.jpg and <root>/labels/sem_seg/masks/{split}/*.png, with <root> "
            "the bdd100k folder or its parent (BDD100K sem_seg layout)")


@DATASETS.register("bdd100k")
class BDD100KDataset(SegmentationDataset):
    needs_root = True
    splits = SPLITS

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        check_split("bdd100k", split, SPLITS)
        given = require_dir(Path(root).expanduser(), "BDD100K root", layout(split))
        root = first_existing((given, given / "bdd100k"), "images/10k") or given
        masks = root / "labels" / "sem_seg" / "masks" / split
        pairs = pair_files(root / "images" / "10k" / split, "*.jpg", lambda image: masks / f"{image.stem}.png",
                           layout(split))
        super().__init__(BDD100K, split, transform, pairs, LabelMap(BDD100K.num_classes))
        self.root = root
