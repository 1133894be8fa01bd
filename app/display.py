"""Pictures as the page shows them. Gradio never draws an image larger than its natural size, so a 160×128 toy
picture would stay a thumbnail in a 340 px panel: small pictures are enlarged by a whole factor with
nearest-neighbour repetition (every source pixel becomes a crisp k×k block, no blur, no new colours).

Only what goes to an image component is enlarged; analysis results stay at their own size. A click on an
enlarged picture (Gradio's `SelectData.index`, in the shown picture's pixels) maps back with `to_source`."""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData

from contextrast.analysis.colormaps import Scale, with_colour_bar
from contextrast.analysis.image_io import encode_png

MIN_LONG_SIDE = 480  # px: about the width of a half-page panel
PNG_LEVEL = 1  # zlib level of the pictures sent: the files are a few % larger than at Gradio's level 6, 5-8× faster


def still_cached(paths: Iterable[Path]) -> bool:
    """Whether every file of `paths` is still there; if so, each is handed out again, and the app's cache clean-up
    (which removes files by age) counts from now."""
    paths = list(paths)
    if not all(path.exists() for path in paths):
        return False
    for path in paths:
        os.utime(path)
    return True


def png_file(picture: np.ndarray, folder: str | Path) -> Path:
    """(H, W), (H, W, 3) RGB or (H, W, 4) RGBA uint8 → a PNG in `folder`/<content hash>/image.png (written once)."""
    data = encode_png(picture, PNG_LEVEL)
    path = Path(folder) / hashlib.sha256(data).hexdigest()[:32] / "image.png"
    if still_cached([path]):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)  # written under a name of its own, then renamed: two requests may
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as tmp:  # draw the same picture
        tmp.write(data)
    Path(tmp.name).replace(path)
    return path


class Picture(gr.Image):
    """The lab's image component, drawn by Gradio's (a template of it). A uint8 picture is sent as a PNG encoded by
    OpenCV at zlib level 1 (~8 ms for 360×480) instead of Gradio's PIL encoder at level 6 (~70 ms, ~120 ms for an
    enlarged panel): a tab redraws up to nine pictures per new sample, and that encoding was a third of the
    server's time for it."""

    is_template = True

    def get_block_name(self) -> str:  # Gradio's image component draws it, and every subclass of it
        return "image"

    def get_block_class(self) -> str:
        return "image"

    def postprocess(self, value: Any) -> ImageData | None:
        if (isinstance(value, np.ndarray) and value.dtype == np.uint8 and str(self.format).lower() == "png"
                and (value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (3, 4)))):
            return ImageData(path=str(png_file(value, self.GRADIO_CACHE)), orig_name="image.png")
        return super().postprocess(value)


def display_factor(shape: Sequence[int], min_long_side: int = MIN_LONG_SIDE) -> int:
    """The whole factor k ≥ 1 that brings the longer of an (H, W, …) picture's sides to at least `min_long_side`."""
    if len(shape) < 2 or min(shape[:2]) < 1:
        raise ValueError(f"a picture has shape (H, W) or (H, W, C) with H, W ≥ 1; got {tuple(shape)}")
    return max(1, math.ceil(min_long_side / max(shape[:2])))


def enlarge(image: np.ndarray | None, min_long_side: int = MIN_LONG_SIDE) -> np.ndarray | None:
    """(H, W[, C]) → (k·H, k·W[, C]) with k = `display_factor`; None (an empty panel) stays None."""
    if image is None:
        return None
    k = display_factor(image.shape, min_long_side)
    if k == 1:
        return image
    return np.repeat(np.repeat(image, k, axis=0), k, axis=1)


def to_source(index: Sequence[float], source_shape: Sequence[int], min_long_side: int = MIN_LONG_SIDE
              ) -> tuple[int, int]:
    """A click's [x, y] on the enlarged picture of a (H, W, …) source → the source pixel (x, y)."""
    k = display_factor(source_shape, min_long_side)
    x, y = (int(float(v) // k) for v in index[:2])
    return min(x, source_shape[1] - 1), min(y, source_shape[0] - 1)


def with_scale(picture: np.ndarray | None, scale: Scale | None) -> np.ndarray | None:
    """The picture as shown (enlarged), with the colour bar of `scale` on its right when given."""
    big = enlarge(picture)
    return big if big is None or scale is None else with_colour_bar(big, scale)


class ImageInput(Picture):
    """The lab's image box. It hands handlers the uploaded file's path without opening it, so that a file which is
    not a picture reaches `contextrast.analysis.image_io.decode_image` (whose message says what is wrong) instead of
    failing inside Gradio's own decoding with a traceback. Drawn by Gradio's image component (a template of it)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        if payload is None or (getattr(payload, "url", None) or "").startswith("data:"):
            return super().preprocess(payload)
        return str(payload.path) if payload.path else None
