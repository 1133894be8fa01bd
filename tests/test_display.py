"""app.display: small pictures are enlarged by a whole factor for the page, and clicks on them map back."""

from __future__ import annotations

import numpy as np
import pytest

from app.display import MIN_LONG_SIDE, display_factor, enlarge, to_source


def test_small_pictures_are_enlarged_by_a_whole_factor_and_big_ones_are_not():
    assert display_factor((128, 160, 3)) == 3  # the toy set: 160 → 480
    assert display_factor((16, 20)) == 24
    assert display_factor((720, 960, 3)) == 1 and display_factor((MIN_LONG_SIDE, 10)) == 1
    rgb = np.random.default_rng(0).integers(0, 256, (128, 160, 3), dtype=np.uint8)
    big = enlarge(rgb)
    assert big.shape == (384, 480, 3) and big.dtype == np.uint8
    assert np.array_equal(big[::3, ::3], rgb) and np.array_equal(big[2::3, 2::3], rgb)  # k×k blocks, no blur
    camvid = np.zeros((720, 960, 3), np.uint8)
    assert enlarge(camvid) is camvid and enlarge(None) is None
    with pytest.raises(ValueError, match="shape"):
        display_factor((0, 5))


def test_a_click_on_the_enlarged_picture_maps_to_its_source_pixel():
    shape = (128, 160, 3)
    rgb = np.arange(128 * 160, dtype=np.int64).reshape(128, 160)
    big = enlarge(rgb)
    for u, v in [(0, 0), (152, 91), (479, 383), (3, 5), (2, 2)]:
        x, y = to_source([u, v], shape)
        assert big[v, u] == rgb[y, x]  # the clicked block is that source pixel's
    assert to_source([152.7, 91.2], shape) == (50, 30)
    assert to_source([5000, 5000], shape) == (159, 127)  # never past the picture's edge


def test_pictures_are_sent_as_lossless_pngs_drawn_by_gradios_image_component(tmp_path):
    """The lab's Picture writes a uint8 picture itself (OpenCV, zlib level 1: a redraw's nine pictures cost ~10 ms
    each instead of ~70-120 ms), pixel for pixel, and the page draws it with Gradio's own image component."""
    import cv2
    import gradio as gr

    from app.display import ImageInput, Picture

    rng = np.random.default_rng(0)
    with gr.Blocks():
        picture = Picture(format="png")
        box = ImageInput(type="filepath", format="png")
    picture.GRADIO_CACHE = str(tmp_path)
    for shape, as_bgr in (((40, 60, 3), [2, 1, 0]), ((40, 60, 4), [2, 1, 0, 3]), ((40, 60), None)):
        array = rng.integers(0, 256, shape, dtype=np.uint8)
        written = cv2.imread(picture.postprocess(array).path, cv2.IMREAD_UNCHANGED)  # OpenCV reads BGR(A)
        assert np.array_equal(written, array if as_bgr is None else array[..., as_bgr])
    assert picture.postprocess(None) is None
    assert picture.get_block_name() == box.get_block_name() == "image"
