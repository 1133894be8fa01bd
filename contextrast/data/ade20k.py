"""ADE20K (SceneParsing150, ADEChallengeData2016): 150 classes, reduce-zero-label (0 → 255, k → k-1)."""

from __future__ import annotations

from contextrast.data.classes import ADE20K
from contextrast.data.images_annotations import ImagesAnnotationsDataset
from contextrast.data.io import LabelTransform, reduce_zero_label
from contextrast.data.registry import DATASETS

SPLIT_FOLDERS = {"train": "training", "val": "validation"}


@DATASETS.register("ade20k")
class ADE20KDataset(ImagesAnnotationsDataset):
    info = ADE20K
    title = "ADE20K"
    splits = tuple(SPLIT_FOLDERS)
    split_folders = SPLIT_FOLDERS
    root_folders = ("ADEChallengeData2016", "")

    @classmethod
    def layout(cls, split: str = "train") -> str:
        folder = SPLIT_FOLDERS.get(split, "training")
        return (f"expected <root>/images/{folder}/ADE_*.jpg and <root>/annotations/{folder}/ADE_*.png, with <root> "
                "the ADEChallengeData2016 folder or its parent (ADE20K layout)")

    @classmethod
    def label_map(cls) -> LabelTransform:
        return reduce_zero_label(ADE20K.num_classes)
