"""COCO-Stuff 164k in mmsegmentation's layout: images/<split>2017 + annotations/<split>2017/*_labelTrainIds.png."""

from __future__ import annotations

from contextrast.data.classes import COCO_STUFF
from contextrast.data.images_annotations import ImagesAnnotationsDataset
from contextrast.data.io import LabelMap, LabelTransform
from contextrast.data.registry import DATASETS

SPLIT_FOLDERS = {"train": "train2017", "val": "val2017"}
LABEL_SUFFIX = "_labelTrainIds.png"


@DATASETS.register("coco_stuff")
class COCOStuffDataset(ImagesAnnotationsDataset):
    info = COCO_STUFF
    title = "COCO-Stuff"
    splits = tuple(SPLIT_FOLDERS)
    split_folders = SPLIT_FOLDERS
    label_suffix = LABEL_SUFFIX
    root_folders = ("", "coco_stuff164k")

    @classmethod
    def layout(cls, split: str = "train") -> str:
        folder = SPLIT_FOLDERS.get(split, "train2017")
        return (f"expected <root>/images/{folder}/*.jpg and <root>/annotations/{folder}/*{LABEL_SUFFIX} "
                "(mmsegmentation COCO-Stuff 164k layout, labels from tools/dataset_converters/coco_stuff164k.py)")

    @classmethod
    def label_map(cls) -> LabelTransform:
        return LabelMap(COCO_STUFF.num_classes)
