"""engine.metrics: confusion-matrix metrics against hand-computed values, and Boundary IoU."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from contextrast.engine.metrics import BoundaryIoU, ConfusionMatrix, boundary_width, mask_boundary

# 2×3 image, K=3; pairs (gt, pred): (0,0) (0,1) (1,1) / (1,1) (2,1) (255, ·) → rows = GT:
#   [[1, 1, 0],
#    [0, 2, 0],
#    [0, 1, 0]]
TARGET = torch.tensor([[0, 0, 1], [1, 2, 255]])
PRED = torch.tensor([[0, 1, 1], [1, 1, 2]])


def test_hand_computed_confusion_and_metrics():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    m = cm.compute()
    np.testing.assert_array_equal(m.confusion, [[1, 1, 0], [0, 2, 0], [0, 1, 0]])
    # TP = [1, 2, 0], GT = [2, 2, 1], Pred = [1, 4, 0], union = [2, 4, 1]
    assert m.per_class_iou == pytest.approx([0.5, 0.5, 0.0])
    assert m.miou == pytest.approx(1 / 3)
    assert m.per_class_acc == pytest.approx([0.5, 1.0, 0.0])
    assert m.macc == pytest.approx(0.5)
    assert m.aacc == pytest.approx(3 / 5)
    assert m.fwiou == pytest.approx((0.5 * 2 + 0.5 * 2 + 0.0 * 1) / 5)


def test_ignored_pixels_do_not_count_whatever_is_predicted():
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED, TARGET)
    other = PRED.clone()
    other[1, 2] = 0  # the pixel whose ground truth is 255
    b.update(other, TARGET)
    np.testing.assert_array_equal(a.compute().confusion, b.compute().confusion)
    assert a.compute().confusion.sum() == 5


def test_absent_classes_are_nan_and_left_out_of_the_means():
    cm = ConfusionMatrix(5)  # classes 3 and 4 never occur in the ground truth
    pred = PRED.clone()
    pred[0, 0] = 4  # class 4 predicted once (a false positive), class 3 neither predicted nor present
    cm.update(pred, TARGET)
    m = cm.compute()
    assert math.isnan(m.per_class_iou[3]) and math.isnan(m.per_class_acc[3])
    # detectron2's rule: IoU only where the class has ground truth, so class 4 is NaN too
    assert math.isnan(m.per_class_iou[4]) and math.isnan(m.per_class_acc[4])
    # class 0 lost its only correct pixel: IoU_0 = 0/2, IoU_1 = 2/4, IoU_2 = 0/1
    assert m.per_class_iou[:3] == pytest.approx([0.0, 0.5, 0.0])
    assert m.miou == pytest.approx(0.5 / 3)
    assert m.macc == pytest.approx((0.0 + 1.0 + 0.0) / 3)
    d = m.to_dict(["a", "b", "c", "d", "e"])
    assert d["per_class_iou"]["d"] is None and d["per_class_iou"]["b"] == pytest.approx(0.5)
    json.dumps(d, allow_nan=False)  # JSON-safe


def test_accumulates_over_batches_and_merges_like_one_pass():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (6, 9, 11), generator=g)
    target[target == 3] = 255
    pred = torch.randint(0, 4, (6, 9, 11), generator=g)
    whole = ConfusionMatrix(4)
    whole.update(pred, target)
    a, b = ConfusionMatrix(4), ConfusionMatrix(4)
    for i in range(3):
        a.update(pred[i], target[i])
    b.update(pred[3:].numpy(), target[3:].numpy())
    merged = a.merge(b).compute()
    np.testing.assert_array_equal(merged.confusion, whole.compute().confusion)
    # independent count: rows = ground truth
    valid = target != 255
    expected = np.zeros((4, 4), np.int64)
    np.add.at(expected, (target[valid].numpy(), pred[valid].numpy()), 1)
    np.testing.assert_array_equal(whole.compute().confusion, expected)
    assert whole.all_reduce() is whole  # no process group: a no-op


@pytest.mark.parametrize("pred,target,match", [
    (torch.tensor([[0, 3]]), torch.tensor([[0, 1]]), "pred holds labels outside"),
    (torch.tensor([[0, 1]]), torch.tensor([[0, 7]]), "target holds labels outside"),
    (torch.tensor([[0, 1]]), torch.tensor([[0, 3]]), "target holds labels outside"),  # K itself, next to ignored
    (torch.tensor([[0, 1]]), torch.tensor([[-1, 1]]), "target holds labels outside"),
    (torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1]]), "shape"),
    (torch.tensor([[0.0, 1.0]]), torch.tensor([[0, 1]]), "integer"),
])
def test_bad_labels_are_refused(pred, target, match):
    with pytest.raises(ValueError, match=match):
        ConfusionMatrix(3).update(pred, target)


def test_table_lists_classes_and_means():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    text = cm.compute().table(["road", "car", "sky"], boundary_iou=[1.0, float("nan"), 0.5])
    assert "road" in text and "sky" in text and "mIoU 33.33" in text and "n/a" in text and "boundary IoU 75.00" in text


# ----------------------------------------------------------------------------------------- Boundary IoU


def test_boundary_width_is_two_percent_of_the_diagonal():
    assert boundary_width(100, 100) == 3  # 0.02 · 141.4 = 2.83
    assert boundary_width(360, 480) == 12  # 0.02 · 600
    assert boundary_width(10, 10) == 1  # at least one pixel


def test_mask_boundary_of_a_square_is_a_ring_of_width_d():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    band = mask_boundary(mask, 2)
    expected = mask.copy()
    expected[7:13, 7:13] = False
    np.testing.assert_array_equal(band, expected)


def square(offset_x: int = 0) -> torch.Tensor:
    labels = torch.zeros(100, 100, dtype=torch.long)
    labels[30:70, 30 + offset_x : 70 + offset_x] = 1
    return labels


def test_identical_masks_have_boundary_iou_one():
    b = BoundaryIoU(3)
    b.update(square(), square())
    out = b.compute()
    assert out["per_class"][:2] == [1.0, 1.0] and math.isnan(out["per_class"][2])
    assert out["mean"] == 1.0


def test_square_shifted_by_two_pixels_has_boundary_iou_one_half():
    # 100×100 image → d = 3. Square 40×40; its band has 40² − 34² = 444 pixels. Shifted right by 2:
    # the 6 full rows (3 top, 3 bottom) overlap on 38 columns each = 228; each of the 34 middle rows
    # overlaps on 2 columns (x = 32 and x = 69) = 68. Intersection 296, union 444 + 444 − 296 = 592.
    b = BoundaryIoU(2)
    b.update(square(2), square(0))
    assert b.compute()["per_class"][1] == pytest.approx(296 / 592)
    # the mask-IoU of the same pair is much higher: boundary IoU is the stricter measure
    cm = ConfusionMatrix(2)
    cm.update(square(2), square(0))
    assert cm.compute().per_class_iou[1] == pytest.approx(1520 / 1680)


def test_boundary_iou_skips_ignored_pixels_and_accumulates():
    target = square()
    target[:, 60:] = 255  # right part unlabelled
    pred = square()
    pred[:, 60:] = 0  # whatever is predicted there must not count
    b = BoundaryIoU(2)
    b.update(pred, target)
    assert b.compute()["per_class"] == [1.0, 1.0]
    b2 = BoundaryIoU(2)
    b2.update(torch.stack([square(2), square(2)]), torch.stack([square(), square()]))
    assert b2.compute()["per_class"][1] == pytest.approx(296 / 592)
    assert b2.intersection[1] == 2 * 296


def test_agrees_with_scikit_learn_when_every_class_occurs():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, 5, (4, 20, 30), generator=g)
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.6, target, torch.randint(0, 5, target.shape, generator=g))
    target[:, :3] = 255
    cm = ConfusionMatrix(5)
    cm.update(pred, target)
    m = cm.compute()
    valid = target != 255
    t, p = target[valid].numpy(), pred[valid].numpy()
    assert m.per_class_iou == pytest.approx(metrics.jaccard_score(t, p, average=None).tolist())
    assert m.aacc == pytest.approx(metrics.accuracy_score(t, p))
    assert m.macc == pytest.approx(metrics.balanced_accuracy_score(t, p))
    np.testing.assert_array_equal(m.confusion, metrics.confusion_matrix(t, p))


def per_class_boundary_counts(pred: np.ndarray, target: np.ndarray, k: int, ignore: int = 255) -> tuple[np.ndarray, ...]:
    """The class-by-class Boundary IoU counts (two erosions per class, `mask_boundary`): the reference the
    all-classes-at-once update must equal."""
    inter, union = np.zeros(k, np.int64), np.zeros(k, np.int64)
    d = boundary_width(*target.shape)
    counted = target != ignore
    for c in np.union1d(np.unique(pred), np.unique(target[counted])):
        gt_band = mask_boundary(target == c, d)
        pred_band = mask_boundary((pred == c) & counted, d)
        inter[c] += np.count_nonzero(gt_band & pred_band)
        union[c] += np.count_nonzero(gt_band | pred_band)
    return inter, union


def blobby_labels(rng: np.random.Generator, k: int, size: tuple[int, int]) -> np.ndarray:
    """Label maps with regions of every size (coarse random grid, upsampled), so bands touch and cross."""
    import cv2

    coarse = rng.integers(0, k, (size[0] // 15 + 1, size[1] // 20 + 1)).astype(np.uint8)
    return cv2.resize(coarse, size[::-1], interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize("seed", range(4))
def test_all_classes_at_once_equals_the_class_by_class_bands(seed):
    rng = np.random.default_rng(seed)
    k, size = 11, (90, 120)
    target = blobby_labels(rng, k, size).astype(np.int64)
    pred = np.where(rng.random(size) < 0.1, rng.integers(0, k, size), blobby_labels(rng, k, size)).astype(np.int64)
    target[rng.random(size) < 0.05] = 255  # scattered ignore pixels
    target[:, :7] = 255  # and an ignored strip at the border
    b = BoundaryIoU(k)
    b.update(torch.from_numpy(pred), torch.from_numpy(target))
    inter, union = per_class_boundary_counts(pred, target, k)
    np.testing.assert_array_equal(b.intersection, inter)
    np.testing.assert_array_equal(b.union, union)
    assert union.sum() > 0 and inter.sum() > 0


def test_boundary_iou_refuses_labels_outside_the_classes():
    with pytest.raises(ValueError, match="0..1"):
        BoundaryIoU(2).update(torch.full((8, 8), 2), torch.zeros(8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="0..1"):
        BoundaryIoU(2).update(torch.zeros(8, 8, dtype=torch.long), torch.full((8, 8), 7))
