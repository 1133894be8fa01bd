"""One analysis forward pass: SCRNet on one RGB image with every intermediate the views draw.

All four views of the lab read one `ModelRun`, so an image costs a single forward pass
(METHOD.md §1: the forward can return Δ′, Δ, M_w of every SRM and A_c, A_s of the CRM).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from contextrast.data.transforms import normalize
from contextrast.models import SCRNet, SCRNetOutput
from contextrast.models.intervention import Intervention


def to_input(rgb: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 → (1, 3, H, W) float32 normalised with the training statistics."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image; got shape {rgb.shape} dtype {rgb.dtype}")
    return normalize(rgb).unsqueeze(0)


def one_image(t: Tensor, what: str) -> Tensor:
    """(1, C, H, W) or (C, H, W) → (C, H, W): the views draw one image at a time; `what` names t in errors."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image's {what}; got batch {t.shape[0]}")
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"expected a (C, H, W) {what}; got shape {tuple(t.shape)}")
    return t


@dataclass
class ModelRun:
    """The forward pass of one image.

    rgb (H, W, 3) uint8; x (1, 3, H, W) the model input; output: `SCRNetOutput` with logits,
    embeddings [E1..E4], srm (3 steps, with the features before and after warping) and crm;
    seconds: forward wall time.
    """

    rgb: np.ndarray
    x: Tensor
    output: SCRNetOutput
    seconds: float = 0.0

    @property
    def logits(self) -> Tensor:
        return self.output.logits


def run_model(model: SCRNet, rgb: np.ndarray, intervention: Intervention | None = None) -> ModelRun:
    """Eval-mode forward with embeddings and intermediates, optionally with parts switched off
    (`contextrast.models.INTERVENTIONS`). The model's train/eval mode is restored afterwards, so callers sharing
    a model across threads serialise calls (the app's model store holds a lock per model)."""
    x = to_input(rgb)
    was_training = model.training
    model.eval()
    try:
        start = time.perf_counter()
        with torch.inference_mode():
            out = model(x, return_intermediates=True, return_embeddings=True, intervention=intervention)
        seconds = time.perf_counter() - start
    finally:
        model.train(was_training)
    return ModelRun(rgb=rgb, x=x, output=out, seconds=seconds)
