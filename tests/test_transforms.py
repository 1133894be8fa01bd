"""Joint image/label augmentation and normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contextrast.data.transforms import MEAN, STD, EvalTransform, TrainTransform, denormalize, normalize, resize_labels

PALETTE = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30], [30, 200, 200], [200, 30, 200]],
                   np.uint8)


def blocky_scene(h: int = 60, w: int = 84, block: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels in blocks and an image whose colour *is* the label (PALETTE[label]); no asymmetry is lost."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, len(PALETTE), (h // block + 1, w // block + 1))
    labels = np.kron(grid, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)
    labels[:, :3] = 5  # an asymmetric stripe on the left, so a missed flip shows
    return PALETTE[labels], labels


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3×3 neighbourhood holds one label (away from label boundaries and the border)."""
    same = np.ones(mask.shape, bool)
    same[[0, -1], :] = same[:, [0, -1]] = False
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same[1:-1, 1:-1] &= mask[1 + dy:mask.shape[0] - 1 + dy, 1 + dx:mask.shape[1] - 1 + dx] == mask[1:-1, 1:-1]
    return same


def test_crop_and_flip_keep_image_and_mask_exactly_aligned() -> None:
    rgb, labels = blocky_scene()
    transform = TrainTransform(crop=(40, 48), scale=(1.0, 1.0), flip=True, jitter=False)
    windows = {(top, left): labels[top:top + 40, left:left + 48] for top in range(21) for left in range(37)}
    flips = 0
    torch.manual_seed(0)
    for _ in range(20):
        out_rgb, out_mask = transform(rgb, labels)
        assert out_rgb.shape == (40, 48, 3) and out_mask.shape == (40, 48) and out_rgb.dtype == np.uint8
        np.testing.assert_array_equal(out_rgb, PALETTE[out_mask])
        plain = any(np.array_equal(out_mask, w) for w in windows.values())
        flipped = any(np.array_equal(out_mask, w[:, ::-1]) for w in windows.values())
        assert plain or flipped, "the labels are not a crop of the input"
        flips += int(flipped and not plain)
    assert 0 < flips < 20  # flipped sometimes, not always


def test_random_scale_keeps_alignment_away_from_boundaries() -> None:
    rgb, labels = blocky_scene(120, 160, block=16)
    transform = TrainTransform(crop=(96, 96), scale=(0.5, 2.0), flip=True, jitter=False)
    torch.manual_seed(1)
    for _ in range(10):
        out_rgb, out_mask = transform(rgb, labels)
        keep = interior(out_mask) & (out_mask != 255)
        error = np.abs(out_rgb.astype(int) - PALETTE[np.minimum(out_mask, 5)].astype(int)).max(-1)
        assert keep.sum() > 1000
        assert (error[keep] <= 2).mean() > 0.99, "image and labels drifted apart"


def test_labels_are_never_interpolated() -> None:
    rng = np.random.default_rng(0)
    values = np.array([0, 3, 7, 255], np.uint8)
    labels = values[rng.integers(0, 4, (37, 53))]
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    torch.manual_seed(0)
    for transform in (TrainTransform(crop=(64, 32), scale=(0.3, 2.7)), EvalTransform(size=(50, 71))):
        for _ in range(5):
            _, out = transform(rgb, labels)
            assert set(np.unique(out).tolist()) <= {0, 3, 7, 255}


@pytest.mark.parametrize("size", [(10, 12), (64, 80), (200, 150)])
def test_crop_size_is_exact(size: tuple[int, int]) -> None:
    rgb, labels = np.zeros((*size, 3), np.uint8), np.zeros(size, np.uint8)
    torch.manual_seed(0)
    for _ in range(3):
        out_rgb, out_mask = TrainTransform(crop=(33, 47))(rgb, labels)
        assert out_rgb.shape == (33, 47, 3) and out_mask.shape == (33, 47)


def test_padding_is_255_for_labels_and_black_for_the_image() -> None:
    rgb = np.full((10, 12, 3), 99, np.uint8)
    labels = np.full((10, 12), 4, np.uint8)
    out_rgb, out_mask = TrainTransform(crop=(32, 32), scale=(1.0, 1.0), flip=False, jitter=False)(rgb, labels)
    assert (out_mask == 255).sum() == 32 * 32 - 120 and (out_mask[:10, :12] == 4).all()
    assert (out_rgb[out_mask == 255] == 0).all() and (out_rgb[:10, :12] == 99).all()


def test_same_torch_seed_same_augmentation() -> None:
    rgb, labels = blocky_scene()
    transform = TrainTransform(crop=(32, 40), scale=(0.5, 2.0))
    torch.manual_seed(7)
    first = transform(rgb, labels)
    torch.manual_seed(7)
    second = transform(rgb, labels)
    torch.manual_seed(8)
    third = transform(rgb, labels)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], third[0])


def test_colour_jitter_changes_the_image_but_not_the_labels() -> None:
    rgb, labels = blocky_scene()
    transform = TrainTransform(crop=(60, 84), scale=(1.0, 1.0), flip=False, jitter=True)
    changed = 0
    for seed in range(6):
        torch.manual_seed(seed)
        out_rgb, out_mask = transform(rgb, labels)
        np.testing.assert_array_equal(out_mask, labels)
        changed += int(not np.array_equal(out_rgb, rgb))
    assert changed >= 4


def test_eval_transform_is_identity_unless_resizing() -> None:
    rgb, labels = blocky_scene()
    out_rgb, out_mask = EvalTransform()(rgb, labels)
    assert out_rgb is rgb and out_mask is labels
    out_rgb, out_mask = EvalTransform(size=(30, 42))(rgb, labels)
    assert out_rgb.shape == (30, 42, 3) and out_mask.shape == (30, 42)
    np.testing.assert_array_equal(out_mask, labels[1::2, 1::2])  # nearest at pixel centres


def test_resize_labels_any_integer_dtype() -> None:
    labels = np.arange(12, dtype=np.int64).reshape(3, 4) * 1000
    np.testing.assert_array_equal(resize_labels(labels, (6, 8)), np.kron(labels, np.ones((2, 2), np.int64)))


def test_normalize_and_denormalize_round_trip() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = normalize(rgb)
    assert image.dtype == torch.float32 and image.shape == (3, 5, 7)
    np.testing.assert_array_equal(denormalize(image), rgb)
    np.testing.assert_array_equal(denormalize(image[None].repeat(2, 1, 1, 1))[1], rgb)
    mean_colour = np.broadcast_to((np.array(MEAN) * 255).round().astype(np.uint8), (2, 2, 3))
    assert normalize(mean_colour).abs().max() < 0.5 / 255 / min(STD) + 1e-6


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="crop"):
        TrainTransform(crop=(0, 10))
    with pytest.raises(ValueError, match="scale"):
        TrainTransform(scale=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        normalize(np.zeros((4, 4), np.uint8))
