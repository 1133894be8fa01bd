"""Pairing image files with label files in a folder layout, with errors that name the layout."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path


def require_dir(path: Path, what: str, layout: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {path} is not a folder; {layout}")
    return path


def first_existing(candidates: Iterable[Path], marker: str) -> Path | None:
    """The first candidate root that holds `marker` (a relative path), e.g. to accept a parent folder too."""
    for root in candidates:
        if (root / marker).exists():
            return root
    return None


def check_labels_exist(pairs: Sequence[tuple[Path, Path]], layout: str) -> None:
    missing = [label for _, label in pairs if not label.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise FileNotFoundError(f"{len(missing)} of {len(pairs)} label maps are missing (e.g. {shown}); {layout}")


def pair_files(image_dir: Path, pattern: str, label_for: Callable[[Path], Path], layout: str) -> list[tuple[Path, Path]]:
    """Images matching `pattern` under `image_dir` (sorted), each with its label file `label_for(image)`.

    Raises FileNotFoundError naming `layout` when the folder is missing or empty, or labels are missing.
    """
    require_dir(image_dir, "image folder", layout)
    images = sorted(image_dir.glob(pattern))
    if not images:
        raise FileNotFoundError(f"no images matching {image_dir / pattern}; {layout}")
    pairs = [(image, label_for(image)) for image in images]
    check_labels_exist(pairs, layout)
    return pairs
