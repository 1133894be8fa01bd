"""A plain folder of images and masks with a `classes.json`, for users' own data.

Layout: `<root>/images/<split>/*.{png,jpg,...}` and `<root>/masks/<split>/<same stem>.png`, or flat
`<root>/images/*` + `<root>/masks/*` used for every split; `<root>/classes.json` holds
`{"classes": [...], "palette": [[r, g, b], ...] (optional), "ignore_index": int (optional)}`.
Masks hold class indices 0..K-1; `ignore_index` and any value ≥ K become 255. Colour-coded
(3-channel) masks are decoded with the palette, unknown colours becoming 255.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from contextrast.config import IGNORE_INDEX
from contextrast.data.base import SegmentationDataset, Transform
from contextrast.data.files import check_labels_exist, require_dir
from contextrast.data.info import DatasetInfo
from contextrast.data.io import IMAGE_SUFFIXES, LabelMap
from contextrast.data.palette import default_palette
from contextrast.data.registry import DATASETS

LAYOUT = ("expected <root>/images/<split>/*.png|jpg and <root>/masks/<split>/<same stem>.png (or flat "
          '<root>/images/ and <root>/masks/), plus <root>/classes.json = {"classes": [...], "palette": '
          '[[r, g, b], ...] (optional), "ignore_index": int (optional)} (folder layout)')
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")


def read_classes(root: Path) -> tuple[DatasetInfo, int | None]:
    path = root / "classes.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {LAYOUT}")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); {LAYOUT}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("classes"), list) or not spec["classes"]:
        raise ValueError(f'{path} needs a non-empty "classes" list; {LAYOUT}')
    unknown = set(spec) - {"classes", "palette", "ignore_index"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: classes, palette, ignore_index")
    classes = tuple(spec["classes"])
    palette = spec.get("palette") or default_palette(len(classes))
    ignore = spec.get("ignore_index")
    if ignore is not None and not isinstance(ignore, int):
        raise ValueError(f"{path}: ignore_index must be an integer; got {ignore!r}")
    return DatasetInfo(name=root.name or "folder", classes=classes, palette=palette), ignore


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class FolderLabelMap:
    """Index masks: ignore value → 255, values ≥ K → 255. Colour masks (BGR as read): palette colour → index."""

    def __init__(self, info: DatasetInfo, ignore_index: int | None) -> None:
        self.info = info
        self.index_map = LabelMap(info.num_classes, {} if ignore_index is None else {ignore_index: IGNORE_INDEX})
        self.colour_codes = {(r << 16) | (g << 8) | b: k for k, (r, g, b) in enumerate(info.palette)}

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if raw.ndim == 2:
            return self.index_map(raw)
        if raw.dtype != np.uint8:
            raise ValueError(f"colour masks must be 8-bit; got {raw.dtype}")
        b, g, r = (raw[..., i].astype(np.int64) for i in range(3))
        codes, inverse = np.unique((r << 16) | (g << 8) | b, return_inverse=True)
        lookup = np.array([self.colour_codes.get(int(c), IGNORE_INDEX) for c in codes], np.uint8)
        return lookup[inverse.reshape(raw.shape[:2])]


@DATASETS.register("folder")
class FolderDataset(SegmentationDataset):
    needs_root = True

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        root = require_dir(Path(root).expanduser(), "folder dataset root", LAYOUT)
        info, ignore = read_classes(root)
        image_root = require_dir(root / "images", "image folder", LAYOUT)
        mask_root = require_dir(root / "masks", "mask folder", LAYOUT)
        available = sorted(p.name for p in image_root.iterdir() if p.is_dir())
        if (image_root / split).is_dir():
            image_dir, mask_dir = image_root / split, mask_root / split
        elif _images(image_root):
            image_dir, mask_dir = image_root, mask_root  # flat folder: the same files serve every split
        else:
            raise ValueError(f"unknown split {split!r} for folder dataset {root}; available splits: "
                             f"{', '.join(available) or '(none: no images found)'}")
        images = _images(image_dir)
        if not images:
            raise FileNotFoundError(f"no images in {image_dir}; {LAYOUT}")
        require_dir(mask_dir, "mask folder", LAYOUT)
        masks: dict[str, Path] = {}
        for path in mask_dir.iterdir():  # one mask per stem; earlier MASK_SUFFIXES win (.png over .tif)
            rank = MASK_SUFFIXES.index(path.suffix.lower()) if path.suffix.lower() in MASK_SUFFIXES else None
            current = masks.get(path.stem)
            if rank is not None and (current is None or rank < MASK_SUFFIXES.index(current.suffix.lower())):
                masks[path.stem] = path
        pairs = [(image, masks.get(image.stem, mask_dir / f"{image.stem}.png")) for image in images]
        check_labels_exist(pairs, LAYOUT)
        super().__init__(info, split, transform, pairs, FolderLabelMap(info, ignore))
        self.root = root
