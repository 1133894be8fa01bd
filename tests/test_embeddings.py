"""contextrast.analysis.embeddings: class-balanced sampling with exact provenance, point ↔ pixel mapping (both
ways, and through the scatter picture), PCA/UMAP projections, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contextrast.analysis import embeddings as emb
from contextrast.analysis.forward import run_model
from contextrast.config import IGNORE_INDEX
from contextrast.data import build_dataset
from contextrast.models import build_model


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    model = build_model({"num_classes": 5, "decoder_channels": 32}).eval()
    ds = build_dataset("toy:size=64x96", "val")
    images = [ds.load(i) for i in range(3)]
    runs = [run_model(model, rgb) for rgb, _ in images]
    return model, ds, images, runs


def pixels_of(setting, layer, labelled=True):
    _, _, images, runs = setting
    return [emb.layer_pixels(run, layer, mask.astype(np.int64) if labelled else None)
            for run, (_, mask) in zip(runs, images)]


@pytest.mark.parametrize("layer", [0, 1, 3])
def test_every_point_maps_to_its_exact_source_pixel_and_back(setting, layer):
    _, _, images, runs = setting
    pixels = pixels_of(setting, layer)
    sample = emb.sample_pixels(pixels, layer, 400, seed=3, num_classes=5)
    assert len(sample) == min(400, sample.available)
    for k in range(len(sample)):
        i, y, x = emb.pixel_of_point(sample, k)
        hit = emb.point_at_pixel(sample, i, y, x)
        assert hit.point == k and hit.exact
        assert sample.truth[k] == images[i][1][y, x]  # the point's label is its source pixel's label
        e = runs[i].output.embeddings[layer][0, :, sample.gy[k], sample.gx[k]].numpy()
        assert np.array_equal(sample.features[k], e)  # and its features are that cell's embedding


def test_every_pixel_of_a_cell_picks_that_cell():
    size, grid = (64, 96), (8, 12)
    rows, cols = emb.source_rows_cols(size, grid)
    for y in range(size[0]):
        for x in range(0, size[1], 7):
            gy, gx = emb.cell_of_pixel(size, grid, y, x)
            assert rows[gy] <= y and (gy + 1 == grid[0] or y < rows[gy + 1])
            assert cols[gx] <= x and (gx + 1 == grid[1] or x < cols[gx + 1])
    with pytest.raises(ValueError, match="outside"):
        emb.cell_of_pixel(size, grid, 64, 0)


def test_sampling_is_class_balanced_and_seeded(setting):
    pixels = pixels_of(setting, 1)
    a = emb.sample_pixels(pixels, 1, 200, seed=0, num_classes=5)
    b = emb.sample_pixels(pixels, 1, 200, seed=0, num_classes=5)
    c = emb.sample_pixels(pixels, 1, 200, seed=1, num_classes=5)
    assert np.array_equal(a.gy, b.gy) and not np.array_equal(a.gy, c.gy)
    truth = np.concatenate([p.truth.ravel() for p in pixels])
    available = np.bincount(truth[truth != IGNORE_INDEX], minlength=5)
    counts = np.bincount(a.truth, minlength=5)
    assert counts.sum() == 200
    assert np.array_equal(counts, emb.balanced_quota(available, 200))
    assert (counts == np.minimum(available, counts.max())).all()  # equal shares, unless a class has fewer pixels
    assert a.anchors.shape == (len(a.anchor_classes), a.features.shape[1])
    assert np.allclose(np.linalg.norm(a.anchors, axis=1), 1.0, atol=1e-5)


def test_balanced_quota():
    assert emb.balanced_quota(np.array([100, 100, 100]), 90).tolist() == [30, 30, 30]
    assert emb.balanced_quota(np.array([5, 100, 100]), 90).tolist() == [5, 42, 43]
    assert emb.balanced_quota(np.array([5, 0, 7]), 90).tolist() == [5, 0, 7]


def test_same_pixels_for_a_second_model(setting):
    _, _, images, _ = setting
    pixels = pixels_of(setting, 2)
    sample = emb.sample_pixels(pixels, 2, 150, seed=0, num_classes=5)
    torch.manual_seed(1)
    other = build_model({"num_classes": 5, "decoder_channels": 32, "align": "bilinear"}).eval()
    other_pixels = [emb.layer_pixels(run_model(other, rgb), 2, m.astype(np.int64)) for rgb, m in images]
    twin = emb.same_pixels(sample, other_pixels)
    assert np.array_equal(twin.gy, sample.gy) and np.array_equal(twin.truth, sample.truth)
    assert not np.allclose(twin.features, sample.features)
    with pytest.raises(ValueError, match="different grids"):
        emb.same_pixels(sample, pixels_of(setting, 1))


def test_without_labels_balances_by_prediction(setting):
    pixels = pixels_of(setting, 1, labelled=False)
    sample = emb.sample_pixels(pixels, 1, 150, seed=0, num_classes=5)
    assert sample.balanced_by == "prediction" and len(sample.anchors) == 0
    with pytest.raises(ValueError, match="no ground truth"):
        emb.point_colours(sample, "ground truth", [[0, 0, 0]] * 5)


def test_scatter_picture_click_finds_the_point(setting, tmp_path):
    _, ds, _, _ = setting
    sample = emb.sample_pixels(pixels_of(setting, 1), 1, 300, seed=0, num_classes=5)
    proj = emb.pca_project(sample)
    assert proj.coords.shape == (len(sample), 2) and proj.anchor_coords.shape == (len(sample.anchors), 2)
    for colour in emb.COLOUR_BY:
        img, canvas = emb.scatter_image(sample, proj, colour, ds.info.palette, size=(300, 360), highlight=5)
        assert img.shape == (300, 360, 3) and img.dtype == np.uint8
        _, colours, _ = emb.point_colours(sample, colour, ds.info.palette)
        last = len(sample) - 1  # drawn last, so nothing covers its centre
        u, v = np.rint(canvas.pixels[last]).astype(int)
        assert (img[v, u] == colours[last]).all() or last == 5
    _, canvas = emb.scatter_image(sample, proj, "ground truth", ds.info.palette)
    unique = [k for k in range(len(sample)) if (np.abs(canvas.pixels - canvas.pixels[k]).sum(1) < 1e-9).sum() == 1]
    for k in unique[:50]:
        u, v = canvas.pixels[k]
        assert emb.pick_point(canvas, u + 0.4, v - 0.4) == k
    assert emb.pick_point(canvas, -500, -500) is None


def test_scatter_picture_places_every_point_once_with_legend_and_axes(setting):
    _, ds, _, _ = setting
    sample = emb.sample_pixels(pixels_of(setting, 1), 1, 250, seed=0, num_classes=5)
    proj = emb.pca_project(sample)
    plain = np.full((500, 660, 3), 255, np.uint8)
    img, canvas = emb.scatter_image(sample, proj, "ground truth", ds.info.palette, classes=ds.info.classes)
    assert canvas.pixels.shape == (len(sample), 2) and np.isfinite(canvas.pixels).all()
    assert np.allclose(canvas.pixels, canvas.to_pixel(proj.coords))  # each point drawn where its coordinates say
    # every dot is found again by a click on it (a point hidden under another maps to one at the same spot)
    for k in range(0, len(sample), 25):
        hit = emb.pick_point(canvas, *canvas.pixels[k])
        assert hit is not None and np.allclose(canvas.pixels[hit], canvas.pixels[k], atol=1.5)
    # the margins carry the axes and the legend: ink outside the plotting area, in the classes' colours
    left_margin = img[:, : canvas.left - 2]
    assert (left_margin != plain[:, : canvas.left - 2]).any()
    legend_colours = {tuple(c) for c in ds.info.palette if (img == np.asarray(c, np.uint8)).all(-1).any()}
    assert len(legend_colours) >= 2
    # the class filter hides a class's points from the picture and from clicks
    truth = sample.truth
    hidden_class = int(np.bincount(truth[truth != 255]).argmax())
    shown = [c for c in range(len(ds.info.classes)) if c != hidden_class]
    _, filtered = emb.scatter_image(sample, proj, "ground truth", ds.info.palette, classes=ds.info.classes,
                                    shown=shown)
    assert np.isnan(filtered.pixels[truth == hidden_class]).all()


def test_umap_projection(setting):
    sample = emb.sample_pixels(pixels_of(setting, 1), 1, 300, seed=0, num_classes=5)
    proj = emb.umap_project(sample, seed=0, n_epochs=15)
    assert proj.method == "UMAP" and proj.coords.shape == (len(sample), 2)
    assert np.isfinite(proj.coords).all() and np.isfinite(proj.anchor_coords).all()
    assert proj.coords.std(0).min() > 0


@pytest.mark.parametrize("n", [0, 99, 10**7, 2.5, "many", None])
def test_bad_sample_sizes(setting, n):
    with pytest.raises(ValueError, match="sample size"):
        emb.sample_pixels(pixels_of(setting, 1), 1, n)


@pytest.mark.parametrize("layer", [-1, 4, 1.5])
def test_bad_layer(setting, layer):
    _, _, images, runs = setting
    with pytest.raises(ValueError, match="layer must be"):
        emb.layer_pixels(runs[0], layer, images[0][1].astype(np.int64))


def test_points_in_polygon_takes_the_dots_inside_a_lasso():
    from contextrast.analysis.embeddings import ScatterCanvas, points_in_polygon

    pixels = np.array([[10, 10], [50, 50], [90, 12], [20, 80], [np.nan, np.nan]], np.float64)
    canvas = ScatterCanvas(size=(100, 100), left=0, top=0, x0=0.0, y1=0.0, sx=1.0, sy=1.0, pixels=pixels)
    triangle = [(0, 0), (100, 0), (0, 100)]  # the upper-left half: (50, 50) and (20, 80) lie on its edge
    assert points_in_polygon(canvas, triangle).tolist() == [0, 1, 3]  # (90, 12) is outside; hidden dots never count
    assert points_in_polygon(canvas, [(60, 0), (100, 0), (100, 30)]).tolist() == [2]
    with pytest.raises(ValueError, match="at least 3"):
        points_in_polygon(canvas, [(0, 0), (5, 5)])


def test_scatter_axes_read_zero_and_name_the_vertical_axis_beside_it(setting):
    import math

    from contextrast.analysis.embeddings.drawing import MARGINS, _nice_ticks

    ticks = _nice_ticks(-0.4, 12.0)  # ceil(-0.08) is -0.0: the first tick was drawn as "-0"
    assert 0.0 in ticks and all(math.copysign(1, t) > 0 for t in ticks if t == 0)  # "0", never "-0"
    assert [f"{t:.3g}" for t in _nice_ticks(0.1, 0.7)] == ["0.2", "0.4", "0.6"]  # no 0.6000000000000001
    sample = emb.sample_pixels(pixels_of(setting, 1), 1, 200, seed=0, num_classes=5)
    proj = emb.pca_project(sample)
    _, ds, _, _ = setting
    img, canvas = emb.scatter_image(sample, proj, "ground truth", ds.info.palette, title="PCA · model · E2")
    ink = (img < 200).any(-1)  # dark pixels: text, ticks, the frame
    h, left, top = canvas.size[0], MARGINS[0], MARGINS[1]
    name_rows = np.flatnonzero(ink[:, :13].any(1))  # the vertical axis name, in the strip left of the ticks
    assert name_rows.max() - name_rows.min() > 15 and name_rows.min() > top and name_rows.max() < h - MARGINS[3]
    title_band = ink[:top - 6, :left]
    assert not title_band.any()  # nothing but the title (which starts at the frame's left edge) above the frame
