"""Exact EDT and BANE (METHOD.md §2 "BANE") against scipy and hand-made percentiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt as scipy_edt

from contextrast.losses import BaneSelection, bane_negatives, distance_transform_edt, region_distance
from contextrast.losses import edt as edt_module


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (7, 13), (13, 7), (16, 16)])
def test_edt_matches_scipy_on_random_masks(shape):
    g = torch.Generator().manual_seed(sum(shape))
    for p in (0.3, 0.7, 0.95):
        masks = torch.rand(4, *shape, generator=g) < p
        ours = distance_transform_edt(masks)
        for b in range(4):
            m = masks[b].numpy()
            if m.all():  # no edge: scipy's output is undefined, ours is inf
                assert torch.isinf(ours[b]).all()
                continue
            np.testing.assert_allclose(ours[b].numpy(), scipy_edt(m), atol=1e-5)


def test_region_distance_is_per_region_label_and_chunking_is_invisible(monkeypatch):
    g = torch.Generator().manual_seed(1)
    regions = torch.randint(-1, 3, (3, 11, 17), generator=g)
    whole = region_distance(regions)
    monkeypatch.setattr(edt_module, "_CHUNK_ELEMENTS", 50)  # forces one row per chunk
    assert torch.equal(region_distance(regions), whole)
    for b in range(3):
        for c in range(3):
            m = (regions[b] == c).numpy()
            if m.any() and not m.all():
                np.testing.assert_allclose(whole[b].numpy()[m], scipy_edt(m)[m], atol=1e-5)
    assert (whole[regions < 0] == 0).all()


def planted() -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth: class 0 everywhere, a class-1 block, an ignore strip. Prediction plants three error
    regions: a 7×7 block predicted 2 (GT 0), touching it a 3×6 block predicted 3 (GT 0), and a 4×5 block
    predicted 2 on GT 1 (a second region of class 2); plus a wrong prediction on ignore (not an error)
    and a correctly predicted class-1 area."""
    labels = torch.zeros(2, 20, 24, dtype=torch.long)
    labels[:, 12:18, 14:22] = 1
    labels[:, :, 0] = 255
    prediction = labels.clone()
    prediction[:, :, 0] = 3  # ignored: never an error
    prediction[0, 2:9, 2:9] = 2
    prediction[0, 2:5, 9:15] = 3
    prediction[0, 13:17, 15:20] = 2
    prediction[1, 3:6, 3:10] = 1
    return prediction, labels


@pytest.mark.parametrize("percent", [10.0, 30.0, 50.0, 75.0, 100.0])
def test_bane_equals_scipy_and_hand_percentile(percent):
    prediction, labels = planted()
    sel = bane_negatives(prediction, labels, percent)
    assert isinstance(sel, BaneSelection)
    error_ref = (labels != 255) & (prediction != labels)
    assert torch.equal(sel.error, error_ref)
    keep_ref = np.zeros(labels.shape, bool)
    for b in range(2):
        for c in range(4):
            mask = ((prediction[b] == c) & error_ref[b]).numpy()
            if not mask.any():
                continue
            dist = scipy_edt(mask)
            np.testing.assert_allclose(sel.distance[b].numpy()[mask], dist[mask], atol=1e-6)
            keep_ref[b] |= mask & (dist <= np.percentile(dist[mask], percent))
    assert (sel.distance[~sel.error] == 0).all()
    assert np.array_equal(sel.keep.numpy(), keep_ref)
    assert not (sel.keep & ~sel.error).any()


def test_touching_regions_of_other_classes_are_each_others_edge():
    prediction, labels = planted()
    d = bane_negatives(prediction, labels, 50).distance
    # pixel (4, 8) of the class-2 block touches the class-3 block at (4, 9): distance 1, not √2 as in a union map
    assert float(d[0, 4, 8]) == 1.0
    assert float(d[0, 5, 5]) == 4.0  # centre of the 7×7 block


def test_rim_is_chosen_before_interior():
    labels = torch.zeros(1, 15, 15, dtype=torch.long)
    prediction = labels.clone()
    prediction[0, 3:12, 3:12] = 1  # a 9×9 error region of class 1
    sel = bane_negatives(prediction, labels, 30)
    assert sel.keep[0, 3, 7] and sel.keep[0, 7, 3]  # rim
    assert not sel.keep[0, 7, 7]  # interior (distance 5)
    kept = sel.distance[sel.keep]
    dropped = sel.distance[sel.error & ~sel.keep]
    assert kept.max() < dropped.min()


def test_no_errors_and_all_ignored_give_empty_selection():
    labels = torch.randint(0, 3, (2, 6, 7))
    sel = bane_negatives(labels.clone(), labels, 50)
    assert not sel.error.any() and not sel.keep.any() and (sel.distance == 0).all()
    ignored = torch.full((2, 6, 7), 255)
    sel = bane_negatives(torch.zeros_like(ignored), ignored, 50)
    assert not sel.keep.any()


def test_bad_input_is_refused():
    x = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="percent"):
        bane_negatives(x, x, 0.0)
    with pytest.raises(ValueError, match="shape"):
        bane_negatives(x, torch.zeros(1, 4, 5, dtype=torch.long), 50)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bane_runs_on_cuda_and_agrees_with_cpu():
    prediction, labels = planted()
    cpu = bane_negatives(prediction, labels, 50)
    gpu = bane_negatives(prediction.cuda(), labels.cuda(), 50)
    assert gpu.keep.is_cuda
    assert torch.equal(gpu.keep.cpu(), cpu.keep)
    assert torch.allclose(gpu.distance.cpu(), cpu.distance)


def test_percentile_falling_between_two_distances_keeps_only_the_lower():
    """A 9×9 region has 32 pixels at distance 1 and 24 at 2; at K_s = 39.375 % numpy's percentile lies
    halfway between them (index 31.5 of 81), so only the distance-1 rim is kept."""
    labels = torch.zeros(1, 15, 15, dtype=torch.long)
    prediction = labels.clone()
    prediction[0, 3:12, 3:12] = 1
    sel = bane_negatives(prediction, labels, 39.375)
    mask = sel.error[0].numpy()
    dist = scipy_edt(mask)
    assert np.percentile(dist[mask], 39.375) == 1.5
    assert np.array_equal(sel.keep[0].numpy(), mask & (dist <= 1.5))
    assert int(sel.keep.sum()) == 32


# --- the rank rule and finer distances (METHOD.md §4) ---------------------------------------------------


def _thick_error(h: int = 64, w: int = 64):
    """A 40×40 region predicted as class 1 whose ground truth is class 0: one thick error region."""
    labels = torch.zeros(1, h, w, dtype=torch.long)
    pred = torch.zeros(1, h, w, dtype=torch.long)
    pred[0, 12:52, 12:52] = 1
    return pred, labels


@pytest.mark.parametrize("k_s", [25, 50, 75])
def test_rank_rule_keeps_k_s_percent_nearest_the_rim(k_s):
    pred, labels = _thick_error()
    g = torch.Generator().manual_seed(0)
    sel = bane_negatives(pred, labels, k_s, rule="rank", generator=g)
    share = float(sel.keep.sum()) / float(sel.error.sum())
    assert share == pytest.approx(k_s / 100, abs=0.01)
    kept, dropped = sel.distance[sel.keep], sel.distance[sel.error & ~sel.keep]
    assert kept.max() <= dropped.min()  # only pixels at least as near the rim as every dropped one
    if k_s == 25:
        assert kept.max() <= 3.0  # a quarter of a 40×40 region lies within 3 px of its edge


def test_rank_rule_breaks_ties_reproducibly_under_a_seed():
    pred, labels = _thick_error(16, 16)
    pred[0] = 0
    pred[0, 4:12, 6:8] = 1  # a 2-wide bar: every error pixel at distance 1 (all tied)
    runs = [bane_negatives(pred, labels, 50, rule="rank", generator=torch.Generator().manual_seed(s)).keep for s in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert int(runs[0].sum()) == 8  # half of 16 tied pixels
    old = bane_negatives(pred, labels, 50, rule="percentile")
    assert int(old.keep.sum()) == 16  # the old rule keeps every tie


def test_distances_carried_from_a_finer_grid_break_the_layer_grid_ties():
    from contextrast.losses.bane import carry_distance, error_distance

    fine_pred = torch.zeros(1, 32, 32, dtype=torch.long)
    fine_pred[0, 8:24, 8:14] = 1  # 6 fine pixels wide → 3 layer pixels wide at stride 2
    labels = torch.zeros(1, 32, 32, dtype=torch.long)
    _, fine = error_distance(fine_pred, labels)
    carried = carry_distance(fine, (16, 16))
    layer_pred = fine_pred[:, ::2, ::2]
    _, own = error_distance(layer_pred, labels[:, ::2, ::2])
    row = layer_pred[0, 8] == 1
    assert own[0, 8][row].tolist() == [1.0, 2.0, 1.0]
    assert carried[0, 8][row].tolist() == [0.5, 1.5, 1.0]  # sub-pixel: the right column lies nearer its edge
