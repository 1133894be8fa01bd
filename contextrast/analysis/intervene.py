"""What a module contributes on one image (METHOD.md §1, `contextrast.models.intervention`): the model run again
with SRM's offsets, its neighbour mask or CRM switched off, the pixels whose class flipped, and per-class IoU before
and after when a ground truth exists. The same interventions `contextrast diagnose` measures over a split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from contextrast.analysis.colormaps import blend
from contextrast.analysis.diagnose import applicable_interventions
from contextrast.analysis.forward import ModelRun, run_model
from contextrast.analysis.predict import colorize
from contextrast.config import IGNORE_INDEX
from contextrast.engine.inference import class_indices
from contextrast.engine.metrics import ConfusionMatrix
from contextrast.models import INTERVENTIONS, SCRNet

DESCRIPTIONS = {
    "offsets_zeroed": "every SRM warps with Δ = 0: plain upsampling through the SRM's weights",
    "mean_offset_removed": "each SRM's offsets minus their mean over the map: only the local alignment is left",
    "mean_offset_only": "each SRM's offsets replaced by their mean: only the global shift is left",
    "mask_off": "Δ = Δ′: the neighbour mask is not applied",
    "crm_off": "the CRM's attention adds nothing (γ_c = γ_s = 0)",
}


def choices(model: SCRNet) -> tuple[list[str], dict[str, str]]:
    """The interventions that change something in `model` (without `as_trained`), and why the others do not."""
    names, skipped = applicable_interventions(model)
    return [n for n in names if n != "as_trained"], skipped


@dataclass
class Effect:
    """One intervention on one image. labels_before/after (H, W) int64; flipped (H, W) bool; per-class IoU
    (None where the class is absent from both truth and prediction) and mIoU when a ground truth was given."""

    name: str
    labels_before: np.ndarray
    labels_after: np.ndarray
    flipped: np.ndarray
    iou_before: list[float | None] | None
    iou_after: list[float | None] | None
    miou_before: float | None
    miou_after: float | None
    seconds: float

    @property
    def flipped_share(self) -> float:
        return float(self.flipped.mean())


def _iou(pred: np.ndarray, truth: np.ndarray, k: int) -> tuple[list[float | None], float | None]:
    cm = ConfusionMatrix(k, IGNORE_INDEX)
    cm.update(torch.as_tensor(pred), torch.as_tensor(truth))
    m = cm.compute()
    per_class = [None if math.isnan(v) else float(v) for v in m.per_class_iou]
    return per_class, None if math.isnan(m.miou) else float(m.miou)


def intervene(model: SCRNet, run: ModelRun, name: str, truth: np.ndarray | None = None) -> Effect:
    """Run `model` on `run`'s image with intervention `name` and compare with `run` (the model as trained)."""
    if name not in INTERVENTIONS or name == "as_trained":
        raise ValueError(f"intervention must be one of {', '.join(n for n in INTERVENTIONS if n != 'as_trained')}; "
                         f"got {name!r}")
    names, skipped = choices(model)
    if name not in names:
        raise ValueError(f"{name} does not apply to this model: {skipped.get(name, 'nothing to switch off')}")
    after = run_model(model, run.rgb, INTERVENTIONS[name])
    before_labels = class_indices(run.logits[0], dim=0).numpy()
    after_labels = class_indices(after.logits[0], dim=0).numpy()
    k = int(run.logits.shape[1])
    iou_b = iou_a = miou_b = miou_a = None
    if truth is not None:
        if truth.shape != before_labels.shape:
            raise ValueError(f"labels {truth.shape} and image {before_labels.shape} differ in size")
        iou_b, miou_b = _iou(before_labels, truth, k)
        iou_a, miou_a = _iou(after_labels, truth, k)
    return Effect(name, before_labels, after_labels, before_labels != after_labels, iou_b, iou_a, miou_b, miou_a,
                  after.seconds)


def flip_picture(rgb: np.ndarray, effect: Effect, palette: Sequence[Sequence[int]], opacity: float = 0.85
                 ) -> np.ndarray:
    """The image dimmed, with every flipped pixel in the colour of the class it flipped to."""
    return blend((rgb * 0.4).astype(np.uint8), colorize(effect.labels_after, palette),
                 effect.flipped.astype(np.float32) * opacity)


def flip_counts(effect: Effect, classes: Sequence[str]) -> list[tuple[str, str, int]]:
    """(from class, to class, pixels) of the most common flips, largest first (at most 8)."""
    k = len(classes)
    a, b = effect.labels_before[effect.flipped], effect.labels_after[effect.flipped]
    pairs = np.bincount(a * k + b, minlength=k * k).reshape(k, k)
    order = np.argsort(pairs.ravel())[::-1][:8]
    return [(classes[i // k], classes[i % k], int(pairs.ravel()[i])) for i in order if pairs.ravel()[i] > 0]


def iou_figure(effect: Effect, classes: Sequence[str]) -> go.Figure:
    """Per-class IoU (%) as trained and with the intervention, side by side."""
    if effect.iou_before is None or effect.iou_after is None:
        raise ValueError("per-class IoU needs a ground truth")
    present = [i for i in range(len(classes)) if effect.iou_before[i] is not None or effect.iou_after[i] is not None]
    names = [classes[i] for i in present]

    def pct(values: list[float | None]) -> list[float | None]:
        return [None if values[i] is None else 100 * values[i] for i in present]

    fig = go.Figure([go.Bar(x=names, y=pct(effect.iou_before), name="as trained", marker_color="#64748b"),
                     go.Bar(x=names, y=pct(effect.iou_after), name=effect.name, marker_color="#f97316")])
    fig.update_layout(barmode="group", yaxis=dict(title="IoU (%)", range=[0, 100]), height=340,
                      margin=dict(l=10, r=10, t=40, b=10), title=f"per-class IoU on this image: as trained vs "
                                                                f"{effect.name}")
    return fig
