"""Dataset-level segmentation metrics: one confusion matrix → mIoU, mAcc, aAcc, fwIoU; and Boundary IoU.

Definitions follow detectron2's `SemSegEvaluator` exactly (the convention of the papers the project
compares against, METHOD.md §3):

- acc_c = TP_c / GT_c, defined where the class has ground-truth pixels (GT_c > 0), else NaN;
- IoU_c = TP_c / (GT_c + Pred_c − TP_c), defined where GT_c > 0 (and so union > 0), else NaN. A class
  that never occurs in the ground truth is left out of the mean even when it is predicted; with the
  whole CamVid/Cityscapes split every class occurs, so this only matters for small subsets;
- mIoU / mAcc: means over the defined classes; aAcc = ΣTP / ΣGT (pixel accuracy);
- fwIoU = Σ_c IoU_c · GT_c / ΣGT over the defined classes.

Pixels whose ground truth is `ignore_index` (255, `contextrast.config.IGNORE_INDEX`) are not counted.

Boundary IoU (Cheng et al., "Boundary IoU: Improving Object-Centric Image Segmentation Evaluation",
CVPR 2021): per class, the boundary band of a binary mask is the set of its pixels within distance d of
its contour (mask minus its erosion by a 3×3 square applied d times, the image border counting as
contour), d = max(1, round(dilation_ratio · image diagonal)); Boundary IoU_c = |G_d ∩ P_d| / |G_d ∪ P_d|
with intersection and union summed over the dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from contextrast.config import IGNORE_INDEX


def _as_label_tensor(x: Tensor | np.ndarray, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array of class indices; got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices; got dtype {x.dtype}")
    if x.dim() not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (B, H, W); got {tuple(x.shape)}")
    return x


def _nan_mean(values: np.ndarray) -> float:
    valid = ~np.isnan(values)
    return float(values[valid].mean()) if valid.any() else float("nan")


def nan_to_none(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


@dataclass
class SegMetrics:
    """Metrics of one confusion matrix. Per-class values are NaN where undefined (see module docstring)."""

    miou: float
    per_class_iou: list[float]
    macc: float
    per_class_acc: list[float]
    aacc: float
    fwiou: float
    confusion: np.ndarray  # (K, K) int64, rows = ground truth, columns = prediction

    def to_dict(self, class_names: list[str] | None = None) -> dict[str, Any]:
        """JSON-safe dict (NaN → None). With `class_names`, per-class values are keyed by name."""

        def per_class(values: list[float]) -> list[float | None] | dict[str, float | None]:
            cleaned = [nan_to_none(v) for v in values]
            return dict(zip(class_names, cleaned)) if class_names is not None else cleaned

        if class_names is not None and len(class_names) != len(self.per_class_iou):
            raise ValueError(f"got {len(class_names)} class names for {len(self.per_class_iou)} classes")
        return {
            "miou": nan_to_none(self.miou),
            "macc": nan_to_none(self.macc),
            "aacc": nan_to_none(self.aacc),
            "fwiou": nan_to_none(self.fwiou),
            "per_class_iou": per_class(self.per_class_iou),
            "per_class_acc": per_class(self.per_class_acc),
            "confusion": self.confusion.astype(np.int64).tolist(),
        }

    def table(self, class_names: list[str] | None = None, boundary_iou: list[float] | None = None) -> str:
        """Plain-text table: one row per class (IoU, Acc, optionally Boundary IoU, in %), then the means."""
        names = list(class_names) if class_names is not None else [str(i) for i in range(len(self.per_class_iou))]
        d = self.to_dict(names)
        if boundary_iou is not None:
            d["per_class_boundary_iou"] = dict(zip(names, (nan_to_none(v) for v in boundary_iou)))
            d["boundary_iou"] = nan_to_none(_nan_mean(np.asarray(boundary_iou, dtype=np.float64)))
        return metrics_table(d)


def metrics_table(m: dict[str, Any]) -> str:
    """Per-class table + summary from a JSON-safe metrics dict (`SegMetrics.to_dict(names)` or `evaluate`'s):
    fractions shown in %, None as n/a; boundary columns when `per_class_boundary_iou` is present."""

    def pct(v: float | None) -> str:
        return "   n/a" if v is None else f"{100 * v:6.2f}"

    names = list(m["per_class_iou"])
    has_b = m.get("per_class_boundary_iou") is not None
    width = max(8, *(len(n) for n in names))
    header = f"{'class':<{width}}  {'IoU':>6}  {'Acc':>6}" + (f"  {'B-IoU':>6}" if has_b else "")
    lines = [header, "-" * len(header)]
    for n in names:
        row = f"{n:<{width}}  {pct(m['per_class_iou'][n])}  {pct(m['per_class_acc'][n])}"
        if has_b:
            row += f"  {pct(m['per_class_boundary_iou'][n])}"
        lines.append(row)
    lines.append("-" * len(header))
    summary = f"mIoU {pct(m['miou']).strip()}  mAcc {pct(m['macc']).strip()}  aAcc {pct(m['aacc']).strip()}  "
    summary += f"fwIoU {pct(m['fwiou']).strip()}"
    if has_b:
        summary += f"  boundary IoU {pct(m.get('boundary_iou')).strip()}"
    lines.append(summary + "  (%)")
    return "\n".join(lines)


class ConfusionMatrix:
    """Dataset-level confusion matrix (K, K), rows = ground truth, columns = prediction.

    Kept as an int64 tensor on the device of the first update, so accumulation on GPU needs no copy.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> None:
        """pred, target: (H, W) or (B, H, W) integer class indices; target may hold `ignore_index`."""
        pred = _as_label_tensor(pred, "pred")
        target = _as_label_tensor(target, "target")
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
        target = target.to(pred.device)
        if self.matrix.device != pred.device:
            self.matrix = self.matrix.to(pred.device)
        k = self.num_classes
        if target.numel() == 0:
            return
        # ignored pixels become row k of a (K+1, K) count, dropped afterwards: one pass of bincount over every
        # pixel instead of copying out the labelled ones (5x faster on a batch of 360×480 maps)
        ignored = target == self.ignore_index
        t = torch.where(ignored, k, target.long())
        p = pred.long()
        low, high = (int(v) for v in torch.aminmax(p))
        if low < 0 or high >= k:
            raise ValueError(f"pred holds labels outside 0..{k - 1}")
        outside = f"target holds labels outside 0..{k - 1} that are not ignore_index={self.ignore_index}"
        low, high = (int(v) for v in torch.aminmax(t))
        if low < 0 or high > k:
            raise ValueError(outside)
        counts = torch.bincount((t * k + p).reshape(-1), minlength=(k + 1) * k).reshape(k + 1, k)
        if int(counts[k].sum()) != int(ignored.sum()):  # row k also holds any pixel labelled k itself
            raise ValueError(outside)
        self.matrix += counts[:k]

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another accumulator's counts into this one (e.g. from another worker); returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge confusion matrices of {other.num_classes} and {self.num_classes} classes")
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts over all ranks when torch.distributed is initialised (no-op otherwise)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)
        return self

    def compute(self) -> SegMetrics:
        cm = self.matrix.detach().cpu().numpy().astype(np.int64)
        tp = np.diag(cm).astype(np.float64)
        pos_gt = cm.sum(axis=1).astype(np.float64)
        pos_pred = cm.sum(axis=0).astype(np.float64)
        total = pos_gt.sum()
        acc = np.full(self.num_classes, np.nan)
        iou = np.full(self.num_classes, np.nan)
        acc_valid = pos_gt > 0
        acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
        union = pos_gt + pos_pred - tp
        iou_valid = acc_valid & (union > 0)
        iou[iou_valid] = tp[iou_valid] / union[iou_valid]
        fwiou = float(np.sum(iou[iou_valid] * pos_gt[iou_valid] / total)) if total > 0 else float("nan")
        return SegMetrics(
            miou=_nan_mean(iou),
            per_class_iou=iou.tolist(),
            macc=_nan_mean(acc),
            per_class_acc=acc.tolist(),
            aacc=float(tp.sum() / total) if total > 0 else float("nan"),
            fwiou=fwiou,
            confusion=cm,
        )


def boundary_width(height: int, width: int, dilation_ratio: float = 0.02) -> int:
    """Band width d in pixels: `dilation_ratio` of the image diagonal, rounded, at least 1."""
    return max(1, int(round(dilation_ratio * math.hypot(height, width))))


def mask_boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """Boundary band of a binary mask (H, W): mask pixels within `width` (chessboard distance) of its contour.

    The mask is zero-padded first, so the image border counts as contour (as in Cheng et al.'s reference).
    """
    mask = mask.astype(np.uint8)
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=width)[1:-1, 1:-1]
    return (mask > 0) & (eroded == 0)


def label_boundary(labels: np.ndarray, width: int, outside: int) -> np.ndarray:
    """Boundary band of every class of a label map (H, W) at once: the pixels whose (2·width+1)² square (chessboard
    distance ≤ width) holds another label or reaches past the image border (drawn as label `outside`, a value no
    pixel has). For each class c this is `mask_boundary(labels == c, width)` restricted to class c's pixels."""
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * width + 1, 2 * width + 1))
    padded = cv2.copyMakeBorder(labels, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=outside)
    low = cv2.erode(padded, square)[1:-1, 1:-1]
    high = cv2.dilate(padded, square)[1:-1, 1:-1]
    return low != high


class BoundaryIoU:
    """Per-class Boundary IoU accumulated over a dataset (Cheng et al. 2021; see module docstring).

    Runs on CPU (OpenCV erosion). Pixels whose ground truth is `ignore_index` count as "not this class" in
    both masks before the bands are drawn, so they never enter intersection or union, and a prediction that
    is right on every labelled pixel scores 1 (as it does in the confusion matrix).
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, dilation_ratio: float = 0.02) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
        if not dilation_ratio > 0:
            raise ValueError(f"dilation_ratio must be positive; got {dilation_ratio}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.dilation_ratio = float(dilation_ratio)
        self.intersection = np.zeros(self.num_classes, dtype=np.int64)
        self.union = np.zeros(self.num_classes, dtype=np.int64)

    def update(self, pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> None:
        """pred, target: (H, W) or (B, H, W) integer class indices; target may hold `ignore_index`."""
        pred = _as_label_tensor(pred, "pred")
        target = _as_label_tensor(target, "target")
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
        preds = pred.detach().cpu().numpy().reshape(-1, *pred.shape[-2:])
        targets = target.detach().cpu().numpy().reshape(-1, *target.shape[-2:])
        for p, t in zip(preds, targets):
            self._update_one(p, t)

    def _update_one(self, pred: np.ndarray, target: np.ndarray) -> None:
        """All classes at once: a pixel lies in the band of its own class exactly where its (2d+1)² square holds
        another label or leaves the image (`label_boundary`), the same set `mask_boundary` draws class by class."""
        k = self.num_classes
        counted = target != self.ignore_index
        if pred.size and (pred.min() < 0 or pred.max() >= k):
            raise ValueError(f"labels must lie in 0..{k - 1} (or be ignore_index); got {pred.min()}..{pred.max()}")
        truth = np.where(counted, target, 0)
        if truth.size and (truth.min() < 0 or truth.max() >= k):
            truth = target[counted]
            raise ValueError(f"labels must lie in 0..{k - 1} (or be ignore_index); got {truth.min()}..{truth.max()}")
        d = boundary_width(*target.shape, self.dilation_ratio)
        dtype = np.uint8 if k + 1 <= np.iinfo(np.uint8).max else np.uint16
        # ignored pixels become label k in both maps ("not this class" for every class), outside the image k + 1
        t = np.where(counted, target, k).astype(dtype)
        p = np.where(counted, pred, k).astype(dtype)
        # one histogram over (truth, prediction, in truth's band, in prediction's band) instead of a boolean
        # selection per count; row k (ignored truth) is left out of every count
        bins = (k + 1) ** 2 * 4
        code = np.uint16 if bins <= np.iinfo(np.uint16).max + 1 else np.intp
        joint = t.astype(code) * code(4 * (k + 1)) + p.astype(code) * code(4)
        joint += label_boundary(t, d, k + 1).astype(code) * code(2)
        joint += label_boundary(p, d, k + 1)
        h = np.bincount(joint.ravel(), minlength=bins).reshape(k + 1, k + 1, 2, 2)[:k]
        gt = h[:, :, 1, :].sum(axis=(1, 2))
        predicted = h[:, :k, :, 1].sum(axis=(0, 2))
        both = h[np.arange(k), np.arange(k), 1, 1]
        self.intersection += both
        self.union += gt + predicted - both

    def merge(self, other: BoundaryIoU) -> BoundaryIoU:
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge Boundary IoU of {other.num_classes} and {self.num_classes} classes")
        self.intersection += other.intersection
        self.union += other.union
        return self

    def all_reduce(self) -> BoundaryIoU:
        """Sum the counts over all ranks when torch.distributed is initialised (no-op otherwise)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            counts = torch.from_numpy(np.stack([self.intersection, self.union]))
            if dist.get_backend() == "nccl":
                counts = counts.cuda()
            dist.all_reduce(counts, op=dist.ReduceOp.SUM)
            self.intersection, self.union = (a.copy() for a in counts.cpu().numpy())
        return self

    def compute(self) -> dict[str, Any]:
        """{"mean": float, "per_class": [float] (NaN where a class has no band in GT nor prediction)}."""
        per_class = np.full(self.num_classes, np.nan)
        valid = self.union > 0
        per_class[valid] = self.intersection[valid] / self.union[valid]
        return {"mean": _nan_mean(per_class), "per_class": per_class.tolist()}
