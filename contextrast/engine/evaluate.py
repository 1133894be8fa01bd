"""Evaluate a model on a dataset split: dataset-level mIoU & co. (engine.metrics) with optional
flip / multi-scale / sliding-window testing (engine.inference), cancellable, with progress callbacks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from contextrast.config import IGNORE_INDEX
from contextrast.engine.inference import predict_logits, resolve_device
from contextrast.engine.metrics import BoundaryIoU, ConfusionMatrix, nan_to_none


def _batches(dataset: Dataset, count: int, batch_size: int):
    """Consecutive samples stacked into batches; a change of image size starts a new batch."""
    pending: list[dict[str, Any]] = []
    for i in range(count):
        sample = dataset[i]
        if pending and (len(pending) == batch_size or sample["image"].shape != pending[0]["image"].shape):
            yield pending
            pending = []
        pending.append(sample)
    if pending:
        yield pending


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    crop: tuple[int, int] | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    boundary: bool = True,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_images: int | None = None,
) -> dict[str, Any]:
    """Run `model` over `dataset` (samples: image (3, H, W) normalised, mask (H, W) 0..K-1 / 255) → JSON-safe dict.

    Keys: miou, macc, aacc, fwiou (fractions in [0, 1], None where undefined), per_class_iou and
    per_class_acc ({class name: value}), boundary_iou and per_class_boundary_iou (when `boundary`),
    confusion (K×K list, rows = ground truth), classes, images, seconds, cancelled, and the test settings.
    `progress(done, total)` is called after every batch; when `should_stop()` turns true the loop stops
    after the current batch and the metrics cover the images seen so far (`cancelled: true`).
    The model is moved to `device`, run in eval mode, and its train/eval mode restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size}")
    info = getattr(dataset, "info", None)
    num_classes = int(getattr(model, "num_classes", 0) or getattr(info, "num_classes", 0))
    if num_classes < 1:
        raise ValueError("cannot tell the number of classes: the model has no num_classes and the dataset no info")
    if info is not None and info.num_classes != num_classes:
        raise ValueError(f"the dataset has {info.num_classes} classes but the model predicts {num_classes}")
    classes = list(info.classes) if info is not None else [str(i) for i in range(num_classes)]
    ignore_index = int(getattr(info, "ignore_index", IGNORE_INDEX))
    total = len(dataset) if max_images is None else min(len(dataset), int(max_images))
    if total < 1:
        raise ValueError("nothing to evaluate: the dataset is empty (or max_images < 1)")

    dev = resolve_device(device)
    was_training = model.training
    model.to(dev).eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    boundary_iou = BoundaryIoU(num_classes, ignore_index) if boundary else None
    done, cancelled = 0, False
    start = time.perf_counter()
    try:
        for batch in _batches(dataset, total, batch_size):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            images = torch.stack([s["image"] for s in batch]).to(dev)
            masks: Tensor = torch.stack([torch.as_tensor(s["mask"]) for s in batch]).to(dev)
            probs = predict_logits(model, images, crop=crop, flip=flip, scales=scales)
            pred = probs.argmax(dim=1)
            confusion.update(pred, masks)
            if boundary_iou is not None:
                boundary_iou.update(pred, masks)
            done += len(batch)
            if progress is not None:
                progress(done, total)
    finally:
        model.train(was_training)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start

    result: dict[str, Any] = confusion.compute().to_dict(classes)
    if boundary_iou is not None:
        b = boundary_iou.compute()
        result["boundary_iou"] = nan_to_none(b["mean"])
        result["per_class_boundary_iou"] = {c: nan_to_none(v) for c, v in zip(classes, b["per_class"])}
    result.update(
        classes=classes,
        images=done,
        seconds=round(seconds, 3),
        cancelled=cancelled,
        flip=bool(flip),
        scales=[float(s) for s in scales],
        crop=list(crop) if crop is not None else None,
    )
    return result
