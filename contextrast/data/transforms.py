"""Joint image + label augmentation (OpenCV) and ImageNet normalisation.

Randomness comes from torch's global generator (`torch.rand`, `torch.randint`), so a fixed
`torch.manual_seed` reproduces a run and DataLoader workers get distinct streams by their own
seeding. Labels are only ever resized with nearest neighbour and padded with 255, so no new label
value can appear (METHOD.md §2 "ignore label").
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from contextrast.config import IGNORE_INDEX

MEAN = (0.485, 0.456, 0.406)  # ImageNet RGB statistics, on images scaled to [0, 1]
STD = (0.229, 0.224, 0.225)


def normalize(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → float32 tensor (3, H, W), ImageNet mean/std normalised."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"normalize expects an (H, W, 3) RGB image; got shape {rgb.shape}")
    image = np.empty((3, *rgb.shape[:2]), np.float32)
    for c in range(3):  # per channel into a planar buffer: ~10x faster than permuting a strided tensor
        image[c] = rgb[..., c] * np.float32(1.0 / (255.0 * STD[c])) - np.float32(MEAN[c] / STD[c])
    return torch.from_numpy(image)


def denormalize(image: torch.Tensor) -> np.ndarray:
    """Float tensor (3, H, W) or (B, 3, H, W) from `normalize` → uint8 (H, W, 3) or (B, H, W, 3) RGB."""
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"denormalize expects (3, H, W) or (B, 3, H, W); got shape {tuple(image.shape)}")
    mean = torch.tensor(MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(STD, device=image.device).view(3, 1, 1)
    rgb = (image.detach().float() * std + mean).mul(255.0).round().clamp(0, 255).to(torch.uint8)
    return rgb.movedim(-3, -1).cpu().numpy()


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _coin(p: float = 0.5) -> bool:
    return bool(torch.rand(()) < p)


def resize_labels(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) label map of any integer dtype to (h, w).

    Samples at pixel centres, the same grid as bilinear image resizing (OpenCV's plain
    INTER_NEAREST floors instead and drifts by up to half a source pixel against the image).
    """
    h, w = size
    rows = np.minimum(((np.arange(h) + 0.5) * (mask.shape[0] / h)).astype(np.int64), mask.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * (mask.shape[1] / w)).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], cols[None, :]]


def resize_pair(rgb: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize to (h, w): bilinear for the image, nearest for the labels."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return rgb, mask
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR), resize_labels(mask, (h, w))


def pad_to(rgb: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right to at least (h, w): image with 0, labels with 255 (ignored)."""
    pad_h, pad_w = max(size[0] - rgb.shape[0], 0), max(size[1] - rgb.shape[1], 0)
    if pad_h == 0 and pad_w == 0:
        return rgb, mask
    rgb = cv2.copyMakeBorder(rgb, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
    return rgb, mask


def _lut(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def colour_jitter(rgb: np.ndarray, brightness: float = 32, contrast: tuple[float, float] = (0.5, 1.5),
                  saturation: tuple[float, float] = (0.5, 1.5), hue: float = 18) -> np.ndarray:
    """Photometric distortion (each part with probability 1/2, contrast before or after the colour steps):
    brightness shift, contrast, saturation, hue — the recipe of mmsegmentation's PhotoMetricDistortion.

    Every step maps each value on its own, so each is a 256-entry lookup table (cv2.LUT), clipped to
    0..255 after every step. `hue` is in OpenCV's 0..180 hue units. Returns uint8 (H, W, 3).
    """
    identity = np.arange(256, dtype=np.float32)
    before = identity.copy()
    if _coin():
        before = np.clip(before + _uniform(-brightness, brightness), 0, 255)
    contrast_first = _coin()
    if contrast_first and _coin():
        before = np.clip(before * _uniform(*contrast), 0, 255)
    image = cv2.LUT(rgb, _lut(before))
    do_saturation, do_hue = _coin(), _coin()
    if do_saturation or do_hue:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        if do_saturation:
            hsv[..., 1] = cv2.LUT(hsv[..., 1], _lut(identity * _uniform(*saturation)))
        if do_hue:
            shifted = (identity + round(_uniform(-hue, hue))) % 180  # hue is 0..179 in OpenCV
            hsv[..., 0] = cv2.LUT(hsv[..., 0], shifted.astype(np.uint8))
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first and _coin():
        image = cv2.LUT(image, _lut(identity * _uniform(*contrast)))
    return image


class TrainTransform:
    """Random scale → pad (labels 255) → random crop → horizontal flip → colour jitter, jointly.

    `scale` multiplies the input size (e.g. 360×480 CamVid at 0.5..2.0); `crop` is the exact (h, w)
    of every output. Input and output: (H, W, 3) uint8 RGB and (H, W) integer labels.
    """

    def __init__(self, crop: tuple[int, int] = (256, 256), scale: tuple[float, float] = (0.5, 2.0),
                 flip: bool = True, jitter: bool = True) -> None:
        crop = tuple(int(c) for c in crop)
        scale = tuple(float(s) for s in scale)
        if len(crop) != 2 or min(crop) < 1:
            raise ValueError(f"crop must be two positive sizes (h, w); got {crop}")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be a range (low, high) with 0 < low <= high; got {scale}")
        self.crop: tuple[int, int] = crop  # type: ignore[assignment]
        self.scale: tuple[float, float] = scale  # type: ignore[assignment]
        self.flip = flip
        self.jitter = jitter

    def __call__(self, rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = _uniform(*self.scale)
        h, w = rgb.shape[:2]
        rgb, mask = resize_pair(rgb, mask, (max(1, round(h * s)), max(1, round(w * s))))
        rgb, mask = pad_to(rgb, mask, self.crop)
        ch, cw = self.crop
        top = int(torch.randint(0, rgb.shape[0] - ch + 1, ()))
        left = int(torch.randint(0, rgb.shape[1] - cw + 1, ()))
        rgb, mask = rgb[top:top + ch, left:left + cw], mask[top:top + ch, left:left + cw]
        if self.flip and _coin():
            rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        if self.jitter:
            rgb = colour_jitter(rgb)
        return np.ascontiguousarray(rgb), np.ascontiguousarray(mask)

    def __repr__(self) -> str:
        return f"TrainTransform(crop={self.crop}, scale={self.scale}, flip={self.flip}, jitter={self.jitter})"


class EvalTransform:
    """Evaluation: the image as is (normalised later by the dataset), or resized to `size` = (h, w).

    With `size`, labels are resized too (nearest), so image and labels stay pixel-aligned.
    """

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"size must be two positive sizes (h, w) or None; got {size}")
        self.size = None if size is None else (int(size[0]), int(size[1]))

    def __call__(self, rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.size is None:
            return rgb, mask
        return resize_pair(rgb, mask, self.size)

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size})"
