"""PASCAL-Context 59 in mmsegmentation's layout: VOC2010 JPEGImages + SegmentationClassContext (0 = background → 255)."""

from __future__ import annotations

from pathlib import Path

from contextrast.data.base import SegmentationDataset, Transform, check_split
from contextrast.data.classes import PASCAL_CONTEXT
from contextrast.data.files import check_labels_exist, first_existing, require_dir
from contextrast.data.io import reduce_zero_label
from contextrast.data.registry import DATASETS

SPLITS = ("train", "val")


def layout(split: str = "train") -> str:
    return ("expected <root>/VOCdevkit/VOC2010/JPEGImages/*.jpg, .../SegmentationClassContext/*.png and "
            f".../ImageSets/SegmentationContext/{split}.txt, with <root> the VOC2010 folder, VOCdevkit, or "
            "their parent (mmsegmentation PASCAL-Context layout)")


@DATASETS.register("pascal_context")
class PascalContextDataset(SegmentationDataset):
    needs_root = True
    splits = SPLITS

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        check_split("pascal_context", split, SPLITS)
        given = require_dir(Path(root).expanduser(), "PASCAL-Context root", layout(split))
        root = first_existing((given, given / "VOC2010", given / "VOCdevkit" / "VOC2010"), "JPEGImages")
        if root is None:
            raise FileNotFoundError(f"no JPEGImages folder under {given}; {layout(split)}")
        list_file = root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        if not list_file.is_file():
            raise FileNotFoundError(f"split list {list_file} not found; {layout(split)}")
        stems = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        pairs = [(root / "JPEGImages" / f"{s}.jpg", root / "SegmentationClassContext" / f"{s}.png") for s in stems]
        if not pairs:
            raise FileNotFoundError(f"split list {list_file} is empty; {layout(split)}")
        missing = [image for image, _ in pairs if not image.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} images listed in {list_file} are missing (e.g. {missing[0]}); "
                                    f"{layout(split)}")
        check_labels_exist(pairs, layout(split))
        super().__init__(PASCAL_CONTEXT, split, transform, pairs, reduce_zero_label(PASCAL_CONTEXT.num_classes))
        self.root = root
