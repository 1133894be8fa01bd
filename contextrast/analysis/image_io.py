"""Robust decoding of what users upload: any common image → RGB uint8 plus plain-language notices,
and label maps checked against the image and the label set (labels 0..K-1, 255 = ignore)."""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageOps, UnidentifiedImageError

from contextrast import limits
from contextrast.config import IGNORE_INDEX

MIN_SIDE = 32  # the network's coarsest stride: smaller images have an empty 1/32 grid
IMAGE_FORMATS = "PNG, JPEG, BMP, TIFF, WebP or GIF"


@dataclass
class DecodedImage:
    """rgb: (H, W, 3) uint8, after resizing to `max_side`.  original_size: (H, W) as uploaded.
    notices: one sentence per conversion the user should know about (grayscale, alpha, 16-bit, resize)."""

    rgb: np.ndarray
    original_size: tuple[int, int]
    notices: list[str] = field(default_factory=list)

    @property
    def resized(self) -> bool:
        return tuple(self.rgb.shape[:2]) != tuple(self.original_size)


def _read_bytes(source: bytes | str | Path, what: str) -> bytes:
    if isinstance(source, bytes):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    return path.read_bytes()


def _open(data: bytes, what: str) -> Image.Image:
    """PIL image with its pixels loaded (so truncated files fail here, not later), after the size its
    header declares was checked against the pixel bound (contextrast.limits)."""
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: the bound that counts is limits'
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            limits.check_image_size(*img.size, what=what)
            img.load()
    except limits.ImageTooLarge:
        raise
    except Image.DecompressionBombError as e:
        raise ValueError(f"{what} is too large to decode safely ({e}); upload a smaller image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        # PIL's "cannot identify image file <_io.BytesIO object at 0x…>" tells a user nothing more than this does
        detail = "" if isinstance(e, UnidentifiedImageError) else f" ({e})"
        raise ValueError(f"{what} is not a readable image{detail}; upload a {IMAGE_FORMATS} file") from None
    return img


def _to_uint8(arr: np.ndarray, notices: list[str]) -> np.ndarray:
    """Scale 16-bit / 32-bit / float samples to 0..255 (16-bit by /257, floats in [0, 1] by ×255,
    anything else by its own range)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if not np.issubdtype(arr.dtype, np.floating) and lo >= 0 and hi <= 65535:
        # integer arithmetic: a big 16-bit picture never needs an 8-byte-per-sample copy
        if hi <= 255:
            return arr.astype(np.uint8)
        notices.append("16-bit image scaled to 8 bits.")
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)  # = round(v / 257)
    a = arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        notices.append("Floating-point image in [0, 1] scaled to 8 bits.")
        return (a * 255.0 + 0.5).astype(np.uint8)
    notices.append(f"Image with values in [{lo:g}, {hi:g}] stretched to 0..255.")
    return ((a - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5).astype(np.uint8)


def _array_to_rgb(arr: np.ndarray, notices: list[str]) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 2: gray+alpha), (H, W, 3) or (H, W, 4: RGBA) of any dtype → (H, W, 3) uint8."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        notices.append("Grayscale image repeated into three colour channels.")
        return np.repeat(_to_uint8(arr, notices)[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (2, 3, 4):
        raise ValueError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4); got {arr.shape}")
    arr = _to_uint8(arr, notices)
    if arr.shape[2] in (2, 4):
        colour = arr[..., :-1] if arr.shape[2] == 4 else np.repeat(arr[..., :1], 3, axis=2)
        alpha = arr[..., -1:].astype(np.float32) / 255.0
        if arr.shape[2] == 2:
            notices.append("Grayscale image repeated into three colour channels.")
        if float(alpha.min()) < 1.0:
            notices.append("Transparent pixels were flattened onto white.")
        arr = (colour.astype(np.float32) * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _pil_to_array(img: Image.Image, notices: list[str]) -> np.ndarray:
    if getattr(img, "n_frames", 1) > 1:
        notices.append("Animated image: only its first frame is analysed.")
    img = ImageOps.exif_transpose(img) or img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode == "PA":
        img = img.convert("RGBA")
    return np.asarray(img)


def decode_image(source: bytes | str | Path | np.ndarray, max_side: int = 2048) -> DecodedImage:
    """Decode an upload (file bytes, a path, or an array) into RGB uint8, at most `max_side` px per side.

    Grayscale, gray+alpha, RGBA, palette, 16-bit and float images are converted (with a notice
    each); bigger images are shrunk (area interpolation) with a notice giving both sizes.
    Raises ValueError for unreadable/corrupt files or images under 32 px a side.
    """
    if max_side < MIN_SIDE:
        raise ValueError(f"max_side must be at least {MIN_SIDE}; got {max_side}")
    notices: list[str] = []
    if isinstance(source, np.ndarray):
        arr = source
    else:
        arr = _pil_to_array(_open(_read_bytes(source, "image"), "the uploaded file"), notices)
    rgb = _array_to_rgb(arr, notices)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"the image is {w}×{h} px; it needs at least {MIN_SIDE} px on each side")
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        nh, nw = max(MIN_SIDE, round(h * scale)), max(MIN_SIDE, round(w * scale))
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        notices.append(f"Large image resized from {w}×{h} to {nw}×{nh} px (limit: {max_side} px per side).")
    return DecodedImage(rgb=rgb, original_size=(h, w), notices=notices)


def validate_label_map(labels: np.ndarray, size: tuple[int, int], num_classes: int,
                       void: Sequence[int] = ()) -> np.ndarray:
    """Check an (H, W) label map: its size must be `size` and every value in 0..K−1, 255 (ignore) or one of the
    label set's `void` values (read as 255, as the dataset's loader reads them).

    Returns it as int64; raises ValueError saying what is wrong and what is allowed.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map must be a single-channel (H, W) image; got shape {labels.shape}")
    if tuple(labels.shape) != tuple(size):
        raise ValueError(f"the label map is {labels.shape[1]}×{labels.shape[0]} px but the image is "
                         f"{size[1]}×{size[0]} px; they must match")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"a label map must hold integer class ids; got dtype {labels.dtype}")
    values = np.unique(labels)
    bad = values[((values < 0) | (values >= num_classes)) & (values != IGNORE_INDEX) & ~np.isin(values, list(void))]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:8]) + (" …" if bad.size > 8 else "")
        voids = "".join(f", {v}" for v in void)
        raise ValueError(f"the label map has values {shown} outside the allowed 0..{num_classes - 1} "
                         f"(classes) and {IGNORE_INDEX}{voids} (ignore)")
    labels = labels.astype(np.int64)
    if len(void):
        labels[np.isin(labels, list(void))] = IGNORE_INDEX
    return labels


def _colours_to_labels(rgb: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table = {(int(r) << 16) | (int(g) << 8) | int(b): i for i, (r, g, b) in enumerate(palette)}
    uniq, inverse = np.unique(codes, return_inverse=True)
    unknown = [u for u in uniq.tolist() if u not in table and u != 0]
    if unknown:
        shown = ", ".join(f"#{u:06x}" for u in unknown[:5])
        raise ValueError(f"the colour label map has colours {shown} that are not in the label set's palette; "
                         "upload class ids (a single-channel PNG) or the palette's colours")
    lut = np.array([table.get(u, IGNORE_INDEX) for u in uniq.tolist()], np.int64)  # black = ignore
    return lut[inverse].reshape(codes.shape)


def decode_label_map(source: bytes | str | Path | np.ndarray, image: DecodedImage, num_classes: int,
                     palette: Sequence[Sequence[int]] | None = None, void: Sequence[int] = ()) -> np.ndarray:
    """Decode a label map for `image`: a single-channel PNG of class ids (8 or 16 bit, or a palette
    PNG whose indices are the ids), or an RGB picture in the label set's `palette` (black = ignore).
    The label set's `void` values (e.g. CamVid's 11) are read as ignore (255).

    Its size must equal the image's original size; when the image was shrunk, the labels are
    resized with nearest neighbour to match. Returns (H, W) int64 on the analysed image's grid.
    """
    if isinstance(source, np.ndarray):
        arr = source
    else:
        img = _open(_read_bytes(source, "label map"), "the label-map file")
        arr = np.asarray(img)  # mode P gives the palette indices, which are the class ids
    if arr.ndim == 3 and arr.shape[2] >= 3:
        colour = arr[..., :3]
        if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2]):
            arr = colour[..., 0]
        elif palette is None:
            raise ValueError("the label map is a colour image; upload a single-channel PNG of class ids")
        else:
            arr = _colours_to_labels(colour.astype(np.uint8), palette)
    labels = validate_label_map(arr, image.original_size, num_classes, void)
    if image.resized:
        labels = cv2.resize(labels.astype(np.uint8), image.rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    return labels.astype(np.int64)


def encode_png(picture: np.ndarray, level: int = 1) -> bytes:
    """(H, W), (H, W, 3) RGB or (H, W, 4) RGBA uint8 → PNG bytes, by OpenCV at zlib `level` (1: fastest)."""
    to_bgr = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}
    pixels = cv2.cvtColor(picture, to_bgr[picture.shape[2]]) if picture.ndim == 3 else picture
    ok, data = cv2.imencode(".png", np.ascontiguousarray(pixels), [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise ValueError(f"could not encode a {picture.shape} picture as PNG")
    return data.tobytes()


def image_trace(rgb: np.ndarray) -> go.Image:
    """`rgb` (H, W, 3) uint8 as a plotly image trace carried as one PNG, without hover. Plotly's `z=` would send
    every pixel as a JSON number (a 360×480 image: half a million of them, megabytes the browser parses and
    paints point by point on every redraw); the PNG is ~0.3 MB and drawn as a picture."""
    return go.Image(source="data:image/png;base64," + base64.b64encode(encode_png(rgb)).decode(), hoverinfo="skip")
