"""Evaluate a model on a dataset split: dataset-level mIoU & co. (engine.metrics) with optional
flip / multi-scale / sliding-window testing (engine.inference), cancellable, with progress callbacks.

Throughput: samples are read and decoded in a background thread (`loaded_ahead`) while the model runs,
consecutive samples of one size are stacked into one batch, and the metrics are dataset-level counts, so
batching changes no figure (tests/test_evaluate.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from contextrast.config import IGNORE_INDEX
from contextrast.engine.inference import predict_labels, resolve_device
from contextrast.engine.metrics import BoundaryIoU, ConfusionMatrix, nan_to_none
from contextrast.engine.precision import resolve_precision

DEFAULT_BATCH = 4  # images per forward where sizes agree (CamVid: all 360×480)
LOOKAHEAD = 8  # samples decoded ahead of the model


def loaded_ahead(dataset: Dataset, count: int, workers: int = 1, lookahead: int = LOOKAHEAD) -> Iterator[dict[str, Any]]:
    """dataset[0..count) in order, read by `workers` background threads up to `lookahead` samples ahead
    (decoding releases the GIL, so it overlaps the forward pass); `workers=0` reads in the caller's thread."""
    if workers < 1:
        yield from (dataset[i] for i in range(count))
        return
    lookahead = max(1, int(lookahead))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval-loader") as pool:
        pending = [pool.submit(dataset.__getitem__, i) for i in range(min(lookahead, count))]
        try:
            for i in range(count):
                sample = pending.pop(0).result()
                if i + lookahead < count:
                    pending.append(pool.submit(dataset.__getitem__, i + lookahead))
                yield sample
        finally:  # stopped early (cancel, error): drop what is not started yet
            for future in pending:
                future.cancel()


def _batches(samples: Iterator[dict[str, Any]], batch_size: int):
    """Consecutive samples stacked into batches; a change of image size starts a new batch."""
    pending: list[dict[str, Any]] = []
    for sample in samples:
        if pending and (len(pending) == batch_size or sample["image"].shape != pending[0]["image"].shape):
            yield pending
            pending = []
        pending.append(sample)
    if pending:
        yield pending


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = DEFAULT_BATCH,
    device: str | torch.device = "cpu",
    crop: tuple[int, int] | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    boundary: bool = True,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_images: int | None = None,
    precision: str = "fp32",
    workers: int = 1,
) -> dict[str, Any]:
    """Run `model` over `dataset` (samples: image (3, H, W) normalised, mask (H, W) 0..K-1 / 255) → JSON-safe dict.

    Keys: miou, macc, aacc, fwiou (fractions in [0, 1], None where undefined), per_class_iou and
    per_class_acc ({class name: value}), boundary_iou and per_class_boundary_iou (when `boundary`),
    confusion (K×K list, rows = ground truth), classes, images, seconds, cancelled, and the test settings.
    `progress(done, total)` is called after every batch; when `should_stop()` turns true the loop stops
    after the current batch and the metrics cover the images seen so far (`cancelled: true`).
    The model is moved to `device`, run in eval mode, and its train/eval mode restored afterwards.
    `precision`: 'auto' | 'fp32' | 'bf16' (`contextrast.engine.precision`); `workers`: loader threads (0: none).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be 0 or more; got {workers}")
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
    precision = resolve_precision(precision, dev)
    was_training = model.training
    model.to(dev).eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    boundary_iou = BoundaryIoU(num_classes, ignore_index) if boundary else None
    done, cancelled = 0, False
    start = time.perf_counter()
    try:
        for batch in _batches(loaded_ahead(dataset, total, workers), batch_size):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            images = torch.stack([s["image"] for s in batch]).to(dev)
            masks: Tensor = torch.stack([torch.as_tensor(s["mask"]) for s in batch]).to(dev)
            pred = predict_labels(model, images, crop=crop, flip=flip, scales=scales, precision=precision)
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
        precision=precision,
        batch_size=int(batch_size),
        crop=list(crop) if crop is not None else None,
    )
    return result
