"""Output pictures that concurrent clients can download safely.

Gradio stores a picture a handler returns as `<cache>/<hash of its bytes>/image.<format>`, and its
`processing_utils.save_pil_to_cache` rewrites that file in place every time the same picture is
produced again (truncate, then write), so a client downloading it meanwhile gets a short or empty
file. Gradio's own `save_file_to_cache` already writes under a temporary name and renames into
place, and never rewrites a copy that exists; `install()` gives pictures the same treatment: the
file of a given content is written once, atomically, and only touched (for `delete_cache`'s ages)
afterwards.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from gradio import processing_utils
from PIL import Image

_original = processing_utils.save_pil_to_cache


def save_pil_to_cache(img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:  # noqa: A002
    """Drop-in for gradio.processing_utils.save_pil_to_cache that never changes a file once written."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    if target.exists():
        with contextlib.suppress(OSError):
            os.utime(target)
        return str(target)
    fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
    return str(target)


def install() -> None:
    """Make every gr.Image output in this process use `save_pil_to_cache` above (idempotent)."""
    processing_utils.save_pil_to_cache = save_pil_to_cache


def uninstall() -> None:
    processing_utils.save_pil_to_cache = _original
