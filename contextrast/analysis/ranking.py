"""Where error analysis starts: every image of a split scored by the model (its own mIoU and its count of wrong
pixels), so the worst can be opened first, optionally only those that contain given classes. Conventions as in
engine.metrics (METHOD.md §3): pixels whose ground truth is 255 are never counted."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from contextrast.config import IGNORE_INDEX
from contextrast.engine.metrics import ConfusionMatrix

SORT_KEYS = ("mIoU (worst first)", "wrong pixels (most first)")


@dataclass(frozen=True)
class ImageScore:
    """One image: `miou` over the classes present in its truth or prediction (NaN without labelled pixels),
    `wrong` labelled pixels predicted wrong, `labelled` pixels with a truth, `present` ground-truth classes."""

    name: str
    miou: float
    wrong: int
    labelled: int
    present: tuple[int, ...]

    @property
    def wrong_share(self) -> float:
        return self.wrong / self.labelled if self.labelled else math.nan


def score_image(name: str, pred: np.ndarray, truth: np.ndarray, num_classes: int) -> ImageScore:
    """`pred`, `truth` (H, W) int class maps (truth 255 = ignore) → the image's score."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in size")
    cm = ConfusionMatrix(num_classes, IGNORE_INDEX)
    cm.update(torch.as_tensor(pred), torch.as_tensor(truth))
    valid = truth != IGNORE_INDEX
    present = tuple(int(c) for c in np.unique(truth[valid]) if 0 <= c < num_classes)
    return ImageScore(name, float(cm.compute().miou), int((pred[valid] != truth[valid]).sum()), int(valid.sum()),
                      present)


def score_split(names: Sequence[str], predict: Callable[[int], tuple[np.ndarray, np.ndarray]], num_classes: int,
                progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> list[ImageScore]:
    """`predict(i)` → (prediction, truth) of image i; one score per image, in the order of `names` (fewer when
    stopped early)."""
    scores = []
    for i, name in enumerate(names):
        if should_stop is not None and should_stop():
            break
        pred, truth = predict(i)
        scores.append(score_image(name, pred, truth, num_classes))
        if progress is not None:
            progress(i + 1, len(names))
    return scores


def ranked(scores: Iterable[ImageScore], sort_by: str, must_contain: Iterable[int] = ()) -> list[ImageScore]:
    """The scores of the images whose truth contains every class of `must_contain`, worst first by `sort_by`
    (one of SORT_KEYS); images without labelled pixels come last."""
    if sort_by not in SORT_KEYS:
        raise ValueError(f"sort by one of {', '.join(SORT_KEYS)}; got {sort_by!r}")
    need = set(must_contain)
    kept = [s for s in scores if need <= set(s.present)]
    if sort_by == SORT_KEYS[0]:
        return sorted(kept, key=lambda s: (math.isnan(s.miou), s.miou))
    return sorted(kept, key=lambda s: -s.wrong)


def table(scores: Sequence[ImageScore], classes: Sequence[str]) -> list[list[object]]:
    """Rows [rank, image, mIoU %, wrong pixels, wrong %, classes present] for a data frame."""
    return [[rank, s.name, None if math.isnan(s.miou) else round(100 * s.miou, 1), s.wrong,
             None if math.isnan(s.wrong_share) else round(100 * s.wrong_share, 1),
             ", ".join(classes[c] for c in s.present)] for rank, s in enumerate(scores, 1)]


TABLE_HEADERS = ["rank", "image", "mIoU %", "wrong pixels", "wrong %", "classes present"]
