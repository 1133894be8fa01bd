"""Cityscapes fine annotations: leftImg8bit/<split>/<city>/ and gtFine/<split>/<city>/ (19 train ids)."""

from __future__ import annotations

from pathlib import Path

from contextrast.data.base import SegmentationDataset, Transform, check_split
from contextrast.data.classes import CITYSCAPES, CITYSCAPES_ID_TO_TRAIN_ID
from contextrast.data.files import pair_files, require_dir
from contextrast.data.io import LabelMap
from contextrast.data.registry import DATASETS

SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"


def layout(split: str = "train") -> str:
    return (f"expected <root>/leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX} and "
            f"<root>/gtFine/{split}/<city>/*_gtFine_labelTrainIds.png (Cityscapes layout)")


def _label(image: Path, root: Path, split: str, kind: str) -> Path:
    stem = image.name[: -len(IMAGE_SUFFIX)]
    return root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_{kind}.png"


@DATASETS.register("cityscapes")
class CityscapesDataset(SegmentationDataset):
    """Reads `*_gtFine_labelTrainIds.png`; where only `*_gtFine_labelIds.png` exist (no
    createTrainIdLabelImgs run), maps label ids to train ids itself with cityscapesScripts' table."""

    needs_root = True
    splits = SPLITS

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        check_split("cityscapes", split, SPLITS)
        root = require_dir(Path(root).expanduser(), "Cityscapes root", layout(split))
        image_dir = root / "leftImg8bit" / split
        first = next(iter(sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))), None) if image_dir.is_dir() else None
        kind = "labelTrainIds"
        if first is not None and not _label(first, root, split, kind).is_file() \
                and _label(first, root, split, "labelIds").is_file():
            kind = "labelIds"
        pairs = pair_files(image_dir, f"*/*{IMAGE_SUFFIX}", lambda image: _label(image, root, split, kind),
                           layout(split))
        label_map = (LabelMap(CITYSCAPES.num_classes) if kind == "labelTrainIds"
                     else LabelMap(CITYSCAPES.num_classes, CITYSCAPES_ID_TO_TRAIN_ID, identity=False))
        super().__init__(CITYSCAPES, split, transform, pairs, label_map)
        self.root = root

    def sample_name(self, index: int) -> str:
        return self.samples[index][0].name[: -len(IMAGE_SUFFIX)]
