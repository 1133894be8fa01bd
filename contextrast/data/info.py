"""What a dataset is about: its class names, display colours and ignore value."""

from __future__ import annotations

from dataclasses import dataclass

from contextrast.config import IGNORE_INDEX


@dataclass(frozen=True)
class DatasetInfo:
    """Class names and palette of a label set; labels are 0..K-1 and `ignore_index` (always 255).

    Every loader maps its own void/ignore value to `IGNORE_INDEX`, so `ignore_index` is fixed at
    255 (METHOD.md §2 "ignore label"); the field exists so consumers never hard-code the number.
    """

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX
    void: tuple[int, ...] = ()  # raw label values the dataset's own annotations use for "no class" (read as 255)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "void", tuple(int(v) for v in self.void))
        object.__setattr__(self, "palette", tuple(tuple(int(v) for v in rgb) for rgb in self.palette))
        if not self.classes:
            raise ValueError(f"dataset {self.name!r} needs at least one class")
        if len(self.classes) >= IGNORE_INDEX:
            raise ValueError(f"dataset {self.name!r} has {len(self.classes)} classes; at most "
                             f"{IGNORE_INDEX - 1} fit below the ignore index {IGNORE_INDEX}")
        if len(self.palette) != len(self.classes):
            raise ValueError(f"dataset {self.name!r}: palette has {len(self.palette)} colours for "
                             f"{len(self.classes)} classes; give one [r, g, b] per class")
        for rgb in self.palette:
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise ValueError(f"dataset {self.name!r}: palette entry {list(rgb)} is not an [r, g, b] in 0..255")
        if self.ignore_index != IGNORE_INDEX:
            raise ValueError(f"ignore_index must be {IGNORE_INDEX} (loaders map void to it); got {self.ignore_index}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)
