"""COCO-Stuff 164k in mmsegmentation's layout: images/<split>2017 + annotations/<split>2017/*_labelTrainIds.png."""

from __future__ import annotations

from pathlib import Path

from contextrast.data.base import SegmentationDataset, Transform, check_split
from contextrast.data.classes import COCO_STUFF
from contextrast.data.files import first_existing, pair_files, require_dir
from contextrast.data.io import LabelMap
from contextrast.data.registry import DATASETS

SPLIT_FOLDERS = {"train": "train2017", "val": "val2017"}
LABEL_SUFFIX = "_labelTrainIds.png"


def layout(split: str = "train") -> str:
    folder = SPLIT_FOLDERS.get(split, "train2017")
    return (f"expected <root>/images/{folder}/*.jpg and <root>/annotations/{folder}/*{LABEL_SUFFIX} "
            "(mmsegmentation COCO-Stuff 164k layout, labels from tools/dataset_converters/coco_stuff164k.py)")


@DATASETS.register("coco_stuff")
class COCOStuffDataset(SegmentationDataset):
    needs_root = True
    splits = tuple(SPLIT_FOLDERS)

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        check_split("coco_stuff", split, tuple(SPLIT_FOLDERS))
        given = require_dir(Path(root).expanduser(), "COCO-Stuff root", layout(split))
        root = first_existing((given, given / "coco_stuff164k"), "images") or given
        folder = SPLIT_FOLDERS[split]
        pairs = pair_files(root / "images" / folder, "*.jpg",
                           lambda image: root / "annotations" / folder / f"{image.stem}{LABEL_SUFFIX}", layout(split))
        super().__init__(COCO_STUFF, split, transform, pairs, LabelMap(COCO_STUFF.num_classes))
        self.root = root
