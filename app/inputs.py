"""The image a request is about: a listed sample, or an upload (+ optional label map), decoded robustly. Free of
Gradio, so that the first page can be prepared while Gradio is still being imported (`app.first_page`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.samples import UPLOAD, Samples
from app.state import LoadedModel, ModelStore
from contextrast.analysis.cards import void_labels
from contextrast.analysis.image_io import decode_image, decode_label_map
from contextrast.engine.card import ModelCard


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


def model_input(store: ModelStore, samples: Samples, model: str | None, sample: str | None, image_path: str | None,
                label_path: str | None, max_side: int) -> tuple[LoadedModel, LabInput]:
    """The request's model (loaded) and its input decoded for that model's classes. Raises ValueError (or
    FileNotFoundError) with a message for the user."""
    loaded = store.get(model)
    return loaded, resolve_input(samples, loaded.card, sample, image_path, label_path, max_side)
