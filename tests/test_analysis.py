"""The lab's pure analysis functions (contextrast.analysis) on a tiny model and the toy set: shapes,
value ranges, known colours, and that the BANE picture shows exactly the loss's recorded pixels."""

from __future__ import annotations

import colorsys
import io

import numpy as np
import pytest
import torch
from PIL import Image

from contextrast.analysis import attention, bane, features, offsets, predict
from contextrast.analysis.forward import run_model
from contextrast.analysis.image_io import decode_image, decode_label_map, validate_label_map
from contextrast.data import build_dataset
from contextrast.losses.record import BANE_NEGATIVE, POSITIVE, RANDOM_NEGATIVE
from contextrast.models import build_model


def tiny_model(align: str = "srm", context: str = "crm", moving: bool = True):
    """A random toy-sized SCRNet; `moving` gives the SRMs non-zero offsets (their last conv starts at 0)."""
    torch.manual_seed(0)
    model = build_model({"num_classes": 5, "align": align, "context": context, "decoder_channels": 32})
    if moving and align != "bilinear":
        with torch.no_grad():
            for step in model.decoder:
                torch.nn.init.normal_(step.offset_head[-1].weight, std=0.05)
    return model.eval()


@pytest.fixture(scope="module")
def sample():
    rgb, mask = build_dataset("toy", "val").load(0)
    return rgb, mask.astype(np.int64)


@pytest.fixture(scope="module")
def run(sample):
    return run_model(tiny_model(), sample[0])


# ------------------------------------------------------------------------------------------- offsets


def test_constant_offset_field_draws_the_known_colour():
    right = np.zeros((2, 4, 5), np.float32)
    right[0] = 1.0  # dx = 1: pointing right → hue 0 → pure red at full saturation
    assert (offsets.flow_to_rgb(right, max_magnitude=1.0) == [255, 0, 0]).all()
    down = np.zeros((2, 3, 3), np.float32)
    down[1] = 2.0  # dy = +2 (image y points down) → hue 90°
    expected = np.round(np.array(colorsys.hsv_to_rgb(0.25, 1.0, 1.0)) * 255).astype(np.uint8)
    assert (np.abs(offsets.flow_to_rgb(down, max_magnitude=2.0).astype(int) - expected) <= 1).all()
    half_left = np.zeros((2, 2, 2), np.float32)
    half_left[0] = -0.5  # left at half the scale → cyan hue, half saturation
    expected = np.round(np.array(colorsys.hsv_to_rgb(0.5, 0.5, 1.0)) * 255).astype(np.uint8)
    assert (np.abs(offsets.flow_to_rgb(half_left, max_magnitude=1.0).astype(int) - expected) <= 1).all()
    assert (offsets.flow_to_rgb(np.zeros((2, 3, 3))) == 255).all()  # no offset: white


def test_color_wheel_legend_matches_flow_colours():
    wheel = offsets.color_wheel(64)
    assert wheel.shape == (64, 64, 3) and wheel.dtype == np.uint8
    assert (wheel[32, 63].astype(int) - [255, 0, 0]).__abs__().max() < 20  # right edge: red
    assert wheel[32, 32].min() > 230  # centre: (almost) white


def test_mask_entropy_extremes():
    uniform = np.full((9, 2, 3), 1 / 9, np.float32)
    one_hot = np.zeros((9, 2, 3), np.float32)
    one_hot[4] = 1.0
    assert np.allclose(offsets.mask_entropy(uniform), 1.0, atol=1e-5)
    assert np.allclose(offsets.mask_entropy(one_hot), 0.0, atol=1e-5)


def test_offsets_render_shapes_and_ranges(run, sample):
    H, W = sample[0].shape[:2]
    for step in range(3):
        v = offsets.render(run, step)
        for img in (v.flow, v.magnitude, v.initial, v.change, v.entropy, v.before, v.after):
            assert img.shape == (H, W, 3) and img.dtype == np.uint8
        assert v.stats["max |Δ| (grid px)"] > 0
        assert len(v.arrows.data) == 3 and v.arrows.data[1].x  # image, arrow lines, origins
        assert set(offsets.CAPTIONS) <= set(v.captions)
    with pytest.raises(ValueError, match="step"):
        offsets.render(run, 3)


def test_zero_offsets_leave_the_warped_feature_unchanged(sample):
    run0 = run_model(tiny_model(moving=False), sample[0])
    before, after = features.srm_warp_features(run0, 2)
    assert torch.allclose(before, after, atol=1e-5)
    v = offsets.render(run0, 2)
    assert np.abs(v.before.astype(int) - v.after.astype(int)).max() <= 1
    assert "zero" in v.arrows.layout.title.text


def test_bilinear_model_has_no_offsets_to_show(sample):
    run_b = run_model(tiny_model(align="bilinear"), sample[0])
    with pytest.raises(ValueError, match="bilinear"):
        offsets.render(run_b, 0)


def test_pca_rgb_uses_a_shared_basis():
    torch.manual_seed(1)
    f = torch.randn(1, 16, 6, 7)
    basis = features.pca_basis(f, f * 2)
    a, b = features.pca_rgb(f, basis), features.pca_rgb(f * 2, basis)
    assert a.shape == (6, 7, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)  # one basis: a scaled feature draws differently


# ------------------------------------------------------------------------------------------- predict


def test_prediction_maps_and_overlay(run, sample):
    rgb, mask = sample
    maps = predict.prediction_maps(run.logits)
    assert maps.labels.shape == mask.shape and maps.labels.max() < 5
    assert (maps.confidence >= 1 / 5 - 1e-6).all() and (maps.confidence <= 1 + 1e-6).all()
    assert (maps.entropy >= 0).all() and (maps.entropy <= 1).all()
    palette = build_dataset("toy", "val").info.palette
    assert np.array_equal(predict.overlay(rgb, maps.labels, palette, 0.0), rgb)
    assert np.array_equal(predict.overlay(rgb, maps.labels, palette, 1.0), predict.colorize(maps.labels, palette))
    hidden = predict.overlay(rgb, maps.labels, palette, 1.0, visible=[])
    assert np.array_equal(hidden, rgb)
    entries = predict.legend(maps.labels, ["a", "b", "c", "d", "e"], palette)
    assert abs(sum(e.share for e in entries) - 1.0) < 1e-6 and entries[0].colour.startswith("#")
    assert predict.confidence_rgb(maps).shape == rgb.shape


# ------------------------------------------------------------------------------------------- attention


def test_spatial_attention_row(run, sample):
    H, W = sample[0].shape[:2]
    overlay, row, scale = attention.render_spatial(run, H / 2, W / 3)
    assert row.shape == run.output.crm.grid and abs(row.sum() - 1.0) < 1e-4
    assert scale.lo == 0.0 and abs(scale.hi - row.max()) < 1e-6  # 0 to the row's largest weight
    assert overlay.shape == (H, W, 3) and overlay.dtype == np.uint8
    with pytest.raises(ValueError, match="outside"):
        attention.spatial_row(run.output.crm, (H, W), H, 0)


def test_stage_contributions_of_a_known_weight():
    w = torch.zeros(3, 2 + 3 + 1, 1, 1)
    w[0, 2:5] = 1.0  # channel 0 reads only stage 2's block
    w[1, 0] = -2.0  # channel 1: stage 1 only (sign does not matter)
    w[2] = 1.0  # channel 2: in proportion to block sizes
    shares = attention.stage_contributions(w, [2, 3, 1])
    assert np.allclose(shares, [[0, 1, 0], [1, 0, 0], [2 / 6, 3 / 6, 1 / 6]])


def test_channel_figure(run):
    model = tiny_model()
    fig = attention.render_channels(run, model)
    c = run.output.crm.channel_attn.shape[-1]
    assert np.asarray(fig.data[1].z).shape == (c, c) and np.asarray(fig.data[0].z).shape == (c, 4)


# ------------------------------------------------------------------------------------------- BANE


def test_bane_draws_exactly_the_recorded_pixels(run, sample):
    rgb, mask = sample
    record = bane.run_loss(run, mask, 5, bane_percent=50.0)
    classes = ["background", "disc", "rectangle", "bar", "triangle"]
    checked = 0
    for rec in record.layers:
        s = rec.samples
        for cls in range(5):
            v = bane.render(record, rgb, rec.layer, cls, classes)
            H, W = rgb.shape[:2]
            h, w = rec.grid
            for trace, role in zip(v.samples.data[1:], (POSITIVE, RANDOM_NEGATIVE, BANE_NEGATIVE)):
                m = (s.cls == cls) & (s.role.long() == role) & (s.image == 0)
                want = np.stack([s.y[m].numpy(), s.x[m].numpy()], -1).reshape(-1, 2)
                got = np.asarray(trace.customdata).reshape(-1, 2)
                assert np.array_equal(got, want)
                assert np.allclose(np.asarray(trace.x, float), (want[:, 1] + 0.5) * W / w)
                assert np.allclose(np.asarray(trace.y, float), (want[:, 0] + 0.5) * H / h)
                checked += len(want)
            assert v.error.shape == rgb.shape and v.distance.shape == rgb.shape
    assert checked == len(torch.cat([r.samples.image for r in record.layers]))  # every sample drawn once
    assert any((r.samples.role == BANE_NEGATIVE).any() for r in record.layers)


def test_bane_error_region_comes_from_the_record(run, sample):
    record = bane.run_loss(run, sample[1], 5)
    rec = bane.layer_record(record, 1)
    for cls in range(5):
        region = bane.error_region(rec, cls)
        lab, pred = rec.labels[0].numpy(), rec.prediction[0].numpy()
        assert np.array_equal(region, (pred == cls) & (lab != cls) & (lab != 255))
        d = bane.error_distance(rec, cls)
        assert np.isnan(d[~region]).all() and (d[region] > 0).all()
    fig = bane.class_loss_figure(record, ["a", "b", "c", "d", "e"])
    assert len(fig.data) == len(record.layers)


def test_bane_needs_matching_labels(run):
    with pytest.raises(ValueError, match="differ"):
        bane.run_loss(run, np.zeros((7, 9), np.int64), 5)


# ------------------------------------------------------------------------------------------- image io


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG") if mode else Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_decode_grayscale_rgba_16bit():
    gray = decode_image(png(np.full((40, 50), 77, np.uint8)))
    assert gray.rgb.shape == (40, 50, 3) and (gray.rgb == 77).all() and "Grayscale" in gray.notices[0]
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :25, 3] = 255  # left half opaque red, right half transparent
    out = decode_image(png(rgba))
    assert (out.rgb[:, :25] == [200, 0, 0]).all() and (out.rgb[:, 25:] == 255).all()
    assert any("Transparent" in n for n in out.notices)
    deep = decode_image(png(np.full((40, 50), 65535, np.uint16)))
    assert (deep.rgb == 255).all() and any("16-bit" in n for n in deep.notices)


def test_decode_resizes_huge_images_with_a_notice():
    out = decode_image(np.zeros((300, 1000, 3), np.uint8), max_side=500)
    assert out.rgb.shape == (150, 500, 3) and out.original_size == (300, 1000)
    assert "1000×300" in out.notices[-1] and "500×150" in out.notices[-1]


@pytest.mark.parametrize("data", [b"not an image at all", png(np.zeros((40, 40, 3), np.uint8))[:60]])
def test_decode_rejects_corrupt_files(data):
    with pytest.raises(ValueError, match="not a readable image") as raised:
        decode_image(data)
    assert "object at 0x" not in str(raised.value)  # no memory address of PIL's in-memory file


def test_decode_rejects_tiny_images():
    with pytest.raises(ValueError, match="at least 32"):
        decode_image(np.zeros((8, 100, 3), np.uint8))


def test_label_map_validation():
    image = decode_image(np.zeros((40, 60, 3), np.uint8))
    ok = np.zeros((40, 60), np.uint8)
    ok[0, 0] = 255
    assert decode_label_map(png(ok), image, 5).dtype == np.int64
    with pytest.raises(ValueError, match="60×40"):
        decode_label_map(png(np.zeros((30, 60), np.uint8)), image, 5)
    bad = ok.copy()
    bad[3, 3] = 9
    with pytest.raises(ValueError, match="9 outside"):
        decode_label_map(png(bad), image, 5)
    with pytest.raises(ValueError, match="integer"):
        validate_label_map(np.zeros((40, 60), np.float32), (40, 60), 5)


def test_label_map_in_palette_colours_and_resized_with_the_image():
    palette = [(10, 20, 30), (200, 0, 0)]
    colour = np.zeros((80, 160, 3), np.uint8)
    colour[:, :80] = palette[1]
    colour[:, 80:] = palette[0]
    image = decode_image(np.zeros((80, 160, 3), np.uint8), max_side=80)  # shrunk to 40×80
    labels = decode_label_map(png(colour), image, 2, palette)
    assert labels.shape == (40, 80) and (labels[:, :40] == 1).all() and (labels[:, 40:] == 0).all()
    colour[0, 0] = (1, 2, 3)
    with pytest.raises(ValueError, match="#010203"):
        decode_label_map(png(colour), image, 2, palette)
