"""The image a request is about: a listed sample, or an upload (+ optional label map), decoded robustly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.display import Picture
from app.samples import UPLOAD, Samples
from contextrast.analysis.cards import void_labels
from contextrast.analysis.image_io import decode_image, decode_label_map
from contextrast.engine.card import ModelCard


class ImageInput(Picture):
    """The lab's image box. It hands handlers the uploaded file's path without opening it, so that a file which is
    not a picture reaches `contextrast.analysis.image_io.decode_image` (whose message says what is wrong) instead of
    failing inside Gradio's own decoding with a traceback. Drawn by Gradio's image component (a template of it)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        if payload is None or (getattr(payload, "url", None) or "").startswith("data:"):
            return super().preprocess(payload)
        return str(payload.path) if payload.path else None


@dataclass
class LabInput:
    """rgb (H, W, 3) uint8; labels (H, W) int64 in the model's classes (255 = ignore) or None;
    notices: what was converted or ignored, in plain sentences."""

    name: str
    rgb: np.ndarray
    labels: np.ndarray | None
    notices: list[str] = field(default_factory=list)


def resolve_input(samples: Samples, card: ModelCard, sample: str | None, image_path: str | None,
                  label_path: str | None, max_side: int) -> LabInput:
    """Pick and decode the request's image. Raises ValueError with a message for the user."""
    if sample and sample != UPLOAD:
        rgb, labels, info = samples.load(sample)
        decoded = decode_image(rgb, max_side)
        notices = list(decoded.notices)
        if list(info.classes) != list(card.classes):
            notices.append(f"The labels of {sample} ({info.name}: {', '.join(info.classes)}) are not the model's "
                           "classes, so they are not used.")
            return LabInput(sample, decoded.rgb, None, notices)
        if decoded.resized:
            import cv2

            labels = cv2.resize(labels.astype(np.uint8), decoded.rgb.shape[1::-1],
                                interpolation=cv2.INTER_NEAREST).astype(np.int64)
        return LabInput(sample, decoded.rgb, labels, notices)
    if not image_path:
        raise ValueError("Upload an image (PNG, JPEG, …) or pick a sample from the list.")
    decoded = decode_image(image_path, max_side)
    labels = None
    if label_path:
        labels = decode_label_map(label_path, decoded, len(card.classes), card.palette, void_labels(card))
    return LabInput("upload", decoded.rgb, labels, list(decoded.notices))
