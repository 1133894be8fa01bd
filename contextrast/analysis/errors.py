"""Error analysis: per-image TP/FP/FN maps, the split's confusion matrix and per-class IoU bars
(numbers from `contextrast.engine.evaluate`, the same as `contextrast eval`), and a two-checkpoint
comparison: where model B fixes model A's errors and where it breaks what A got right.

Conventions as in engine.metrics (METHOD.md §3): rows of the confusion matrix are the ground truth,
pixels whose ground truth is 255 (ignore) are never counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn
from torch.utils.data import Dataset

from contextrast.analysis.colormaps import blend
from contextrast.config import IGNORE_INDEX
from contextrast.limits import MAX_CLASSES

# outcome codes of one pixel for one class filter (or all classes)
NONE, TP, FP, FN, WRONG, IGNORED = range(6)
OUTCOME_NAMES = {TP: "true positive", FP: "false positive", FN: "false negative", WRONG: "wrong class",
                 IGNORED: "unlabelled"}
OUTCOME_COLOURS = {TP: (40, 170, 80), FP: (235, 60, 40), FN: (40, 110, 235), WRONG: (235, 60, 40),
                   IGNORED: (120, 120, 120)}
# two-model comparison codes
BOTH_RIGHT, FIXED, BROKEN, BOTH_WRONG = range(1, 5)
COMPARISON_NAMES = {FIXED: "fixed by B", BROKEN: "broken by B", BOTH_RIGHT: "both right", BOTH_WRONG: "both wrong"}
COMPARISON_COLOURS = {FIXED: (40, 190, 80), BROKEN: (235, 40, 40), BOTH_RIGHT: (200, 200, 200),
                      BOTH_WRONG: (250, 170, 30)}


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape or pred.ndim != 2:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} must be (H, W) maps of one size")


def outcome_map(pred: np.ndarray, truth: np.ndarray, cls: int | None = None) -> np.ndarray:
    """(H, W) outcome code per pixel. With a class `cls`: TP (pred = truth = cls), FP (pred = cls ≠ truth),
    FN (truth = cls ≠ pred), NONE elsewhere; without: TP (right) or WRONG. IGNORED where truth is 255."""
    _check_pair(pred, truth)
    valid = truth != IGNORE_INDEX
    out = np.full(truth.shape, NONE, np.int64)
    if cls is None:
        out[valid & (pred == truth)] = TP
        out[valid & (pred != truth)] = WRONG
    else:
        out[valid & (pred == cls) & (truth == cls)] = TP
        out[valid & (pred == cls) & (truth != cls)] = FP
        out[valid & (pred != cls) & (truth == cls)] = FN
    out[~valid] = IGNORED
    return out


@dataclass
class OutcomeView:
    """picture (H, W, 3) uint8; counts: outcome name → pixels (over the labelled pixels)."""

    picture: np.ndarray
    counts: dict[str, int]


def render_outcomes(rgb: np.ndarray, pred: np.ndarray, truth: np.ndarray, cls: int | None = None,
                    only_mistakes: bool = False, opacity: float = 0.65) -> OutcomeView:
    """The outcome map over a dimmed image; `only_mistakes` leaves true positives undrawn."""
    if rgb.shape[:2] != truth.shape:
        raise ValueError(f"image {rgb.shape[:2]} and ground truth {truth.shape} differ in size")
    codes = outcome_map(pred, truth, cls)
    shown = [FP, FN, WRONG] if only_mistakes else [TP, FP, FN, WRONG, IGNORED]
    colour = np.zeros_like(rgb)
    for code in shown:
        colour[codes == code] = OUTCOME_COLOURS[code]
    alpha = np.isin(codes, shown).astype(np.float32) * opacity
    picture = blend((rgb * 0.5).astype(np.uint8), colour, alpha)
    kinds = [TP, FP, FN] if cls is not None else [TP, WRONG]
    counts = {OUTCOME_NAMES[k]: int((codes == k).sum()) for k in kinds}
    return OutcomeView(picture, counts)


def confusion_figure(confusion: np.ndarray | Sequence[Sequence[int]], classes: Sequence[str],
                     normalised: bool = False) -> go.Figure:
    """Heatmap of a (K, K) confusion matrix, rows = ground truth. `normalised`: each row divided by its
    sum (the share of the class's pixels predicted as each class; rows without pixels stay 0)."""
    if len(classes) > MAX_CLASSES:
        raise ValueError(f"a confusion matrix of {len(classes)} classes; at most {MAX_CLASSES} are drawn")
    cm = np.asarray(confusion, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(f"confusion must be ({len(classes)}, {len(classes)}); got {cm.shape}")
    z = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalised else cm
    text = [[f"{v:.2f}" if normalised else f"{int(v)}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=list(classes), y=list(classes), colorscale="Blues", text=text,
                               texttemplate="%{text}", hovertemplate="truth %{y}<br>predicted %{x}<br>%{text}"
                                                                     "<extra></extra>"))
    fig.update_layout(title="Confusion matrix" + (" (rows normalised)" if normalised else " (pixels)"),
                      xaxis_title="predicted", yaxis_title="ground truth", yaxis=dict(autorange="reversed"),
                      height=420, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def iou_figure(metrics: dict[str, Any]) -> go.Figure:
    """Grouped bars per class: IoU and (when present) boundary IoU, from an `evaluate` result dict."""
    classes = list(metrics["per_class_iou"])

    def values(d: dict[str, float | None]) -> list[float | None]:
        return [None if d[c] is None else 100 * d[c] for c in classes]

    fig = go.Figure(go.Bar(x=classes, y=values(metrics["per_class_iou"]), name="IoU"))
    if metrics.get("per_class_boundary_iou") is not None:
        fig.add_trace(go.Bar(x=classes, y=values(metrics["per_class_boundary_iou"]), name="boundary IoU"))
    miou = metrics.get("miou")
    title = "Per-class IoU (%)" + (f" — mIoU {100 * miou:.1f}" if miou is not None else "")
    if metrics.get("boundary_iou") is not None:
        title += f", boundary IoU {100 * metrics['boundary_iou']:.1f}"
    fig.update_layout(barmode="group", title=title, yaxis=dict(range=[0, 100], title="%"), height=360,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


TABLE_HEADERS = ["class", "IoU %", "Acc %", "boundary IoU %"]


def table_headers(name_b: str | None = None) -> list[str]:
    return TABLE_HEADERS + ([f"IoU % of {name_b}", f"Δ IoU ({name_b} − A)"] if name_b else [])


def per_class_table(metrics: dict[str, Any], other: dict[str, Any] | None = None) -> list[list[Any]]:
    """Rows [class, IoU %, Acc %, boundary IoU %] (None where undefined) from an `evaluate` result; with the
    `other` checkpoint's result on the same split, also its IoU % and the difference (other − this)."""
    def pct(v: float | None) -> float | None:
        return None if v is None else round(100 * v, 2)

    b = metrics.get("per_class_boundary_iou") or {}
    rows = []
    for c in metrics["per_class_iou"]:
        row = [c, pct(metrics["per_class_iou"][c]), pct(metrics["per_class_acc"][c]), pct(b.get(c))]
        if other is not None:
            mine, theirs = metrics["per_class_iou"][c], other["per_class_iou"].get(c)
            row += [pct(theirs), None if mine is None or theirs is None else round(100 * (theirs - mine), 2)]
        rows.append(row)
    return rows


def iou_comparison_figure(metrics_a: dict[str, Any], metrics_b: dict[str, Any], name_a: str = "A",
                          name_b: str = "B") -> go.Figure:
    """Per-class IoU (%) of two checkpoints on the same split, side by side, with the mIoU of each."""
    classes = list(metrics_a["per_class_iou"])

    def values(m: dict[str, Any]) -> list[float | None]:
        return [None if m["per_class_iou"].get(c) is None else 100 * m["per_class_iou"][c] for c in classes]

    fig = go.Figure([go.Bar(x=classes, y=values(metrics_a), name=f"{name_a} (mIoU {100 * metrics_a['miou']:.1f})"),
                     go.Bar(x=classes, y=values(metrics_b), name=f"{name_b} (mIoU {100 * metrics_b['miou']:.1f})")])
    fig.update_layout(barmode="group", title=f"Per-class IoU (%): {name_b} − {name_a} = "
                                             f"{100 * (metrics_b['miou'] - metrics_a['miou']):+.1f} mIoU points",
                      yaxis=dict(range=[0, 100], title="%"), height=360, margin=dict(l=10, r=10, t=40, b=10))
    return fig


# ------------------------------------------------------------------------------------------ two models


@dataclass
class Comparison:
    """Pixel counts of a two-model comparison over labelled pixels: fixed (A wrong, B right), broken (A right,
    B wrong), both_right, both_wrong; `labelled` = their sum = pixels whose truth is not 255. `per_class`:
    class → [fixed, broken] by ground-truth class."""

    fixed: int = 0
    broken: int = 0
    both_right: int = 0
    both_wrong: int = 0
    labelled: int = 0
    per_class: dict[int, list[int]] = field(default_factory=dict)
    images: int = 0

    def add(self, other: Comparison) -> Comparison:
        self.fixed += other.fixed
        self.broken += other.broken
        self.both_right += other.both_right
        self.both_wrong += other.both_wrong
        self.labelled += other.labelled
        self.images += other.images
        for c, (f, b) in other.per_class.items():
            mine = self.per_class.setdefault(c, [0, 0])
            mine[0] += f
            mine[1] += b
        return self

    def summary(self, name_a: str = "A", name_b: str = "B") -> str:
        pct = 100.0 / max(self.labelled, 1)
        return (f"Over {self.labelled} labelled pixels: **{name_b} fixes {self.fixed}** ({self.fixed * pct:.2f} %) of "
                f"{name_a}'s errors and **breaks {self.broken}** ({self.broken * pct:.2f} %) pixels {name_a} got right; "
                f"both right {self.both_right} ({self.both_right * pct:.2f} %), both wrong {self.both_wrong} "
                f"({self.both_wrong * pct:.2f} %). Net change in correct pixels: {self.fixed - self.broken:+d}.")


def comparison_map(pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(H, W) code per pixel: FIXED, BROKEN, BOTH_RIGHT, BOTH_WRONG; NONE (0) where the truth is 255."""
    _check_pair(pred_a, truth)
    _check_pair(pred_b, truth)
    valid = truth != IGNORE_INDEX
    a, b = pred_a == truth, pred_b == truth
    out = np.zeros(truth.shape, np.int64)
    out[valid & a & b] = BOTH_RIGHT
    out[valid & ~a & b] = FIXED
    out[valid & a & ~b] = BROKEN
    out[valid & ~a & ~b] = BOTH_WRONG
    return out


def compare(pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray) -> Comparison:
    """The counts of `comparison_map` for one image."""
    codes = comparison_map(pred_a, pred_b, truth)
    counts = np.bincount(codes.ravel(), minlength=5)
    per_class = {}
    valid = truth != IGNORE_INDEX
    for c in np.unique(truth[valid]).tolist():
        m = truth == c
        per_class[int(c)] = [int((codes[m] == FIXED).sum()), int((codes[m] == BROKEN).sum())]
    return Comparison(fixed=int(counts[FIXED]), broken=int(counts[BROKEN]), both_right=int(counts[BOTH_RIGHT]),
                      both_wrong=int(counts[BOTH_WRONG]), labelled=int(valid.sum()), per_class=per_class, images=1)


def render_comparison(rgb: np.ndarray, codes: np.ndarray, hide_agreement: bool = True,
                      opacity: float = 0.7) -> np.ndarray:
    """The comparison codes over a dimmed image: green fixed, red broken, orange both wrong, grey both right
    (left out when `hide_agreement`)."""
    shown = [FIXED, BROKEN, BOTH_WRONG] + ([] if hide_agreement else [BOTH_RIGHT])
    colour = np.zeros_like(rgb)
    for code in shown:
        colour[codes == code] = COMPARISON_COLOURS[code]
    return blend((rgb * 0.5).astype(np.uint8), colour, np.isin(codes, shown).astype(np.float32) * opacity)


def comparison_figure(cmp: Comparison, classes: Sequence[str], name_a: str = "A", name_b: str = "B") -> go.Figure:
    """Per ground-truth class: pixels B fixed (up) and broke (down)."""
    ids = sorted(cmp.per_class)
    names = [classes[c] if c < len(classes) else str(c) for c in ids]
    fig = go.Figure([go.Bar(x=names, y=[cmp.per_class[c][0] for c in ids], name=f"fixed by {name_b}",
                            marker_color="#28be50"),
                     go.Bar(x=names, y=[-cmp.per_class[c][1] for c in ids], name=f"broken by {name_b}",
                            marker_color="#eb2828")])
    fig.update_layout(barmode="relative", title=f"{name_b} against {name_a}, per ground-truth class (pixels)",
                      height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def compare_on_dataset(model_a: nn.Module, model_b: nn.Module, dataset: Dataset,
                       progress: Callable[[int, int], None] | None = None,
                       should_stop: Callable[[], bool] | None = None, max_images: int | None = None) -> Comparison:
    """`compare` summed over a dataset split (samples as in contextrast.data: image (3, H, W) normalised,
    mask (H, W)); both models run in eval mode on the CPU, one image at a time; cancellable like evaluate."""
    from contextrast.engine.inference import class_indices, predict_logits

    total = len(dataset) if max_images is None else min(len(dataset), int(max_images))  # type: ignore[arg-type]
    result = Comparison()
    modes = (model_a.training, model_b.training)
    model_a.eval()
    model_b.eval()
    try:
        for i in range(total):
            if should_stop is not None and should_stop():
                break
            s = dataset[i]
            x = s["image"][None]
            with torch.inference_mode():
                pa = class_indices(predict_logits(model_a, x))[0].numpy()
                pb = class_indices(predict_logits(model_b, x))[0].numpy()
            result.add(compare(pa, pb, np.asarray(s["mask"])))
            if progress is not None:
                progress(i + 1, total)
    finally:
        model_a.train(modes[0])
        model_b.train(modes[1])
    return result
