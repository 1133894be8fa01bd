"""contextrast.analysis.learn: each step of the walk-through, computed with the real loss and real toy data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contextrast.analysis import learn
from contextrast.analysis.bane import run_loss
from contextrast.analysis.forward import run_model
from contextrast.config import LossConfig
from contextrast.data import build_dataset
from contextrast.data.toy import TOY
from contextrast.losses.bane import bane_on_grid, fine_error_distance
from contextrast.losses.grid import nearest_resize
from contextrast.models import build_model

CLASSES, PALETTE = list(TOY.classes), [list(c) for c in TOY.palette]


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    model = build_model({"num_classes": 5, "decoder_channels": 16}).eval()
    rgb, mask = build_dataset("toy:size=64x96", "val").load(0)
    return run_model(model, rgb), mask.astype(np.int64)


def test_anchor_step_stars_are_class_means(toy):
    run, labels = toy
    step = learn.anchor_step(run, labels, 1, CLASSES, PALETTE)
    stars = step.picture.data[-1]
    present = np.unique(nearest_resize(torch.as_tensor(labels)[None], run.output.embeddings[1].shape[-2:]))
    assert len(stars.x) == len(present) and "anchor" in step.text


def test_update_step_moves_anchors_towards_the_deepest(toy):
    run, labels = toy
    zero = learn.update_step(run, labels, 0, 0.0, CLASSES, PALETTE)
    half = learn.update_step(run, labels, 0, 0.5, CLASSES, PALETTE)
    full = learn.update_step(run, labels, 0, 1.0, CLASSES, PALETTE)
    assert "to 1.00" in full.text  # w_h = 1: the updated anchors are the deepest ones
    before = float(zero.text.split("goes from ")[1].split(" to ")[0])
    after_half = float(half.text.split(" to ")[-1].split(" ")[0])
    assert after_half > before
    with pytest.raises(ValueError, match="w_h"):
        learn.update_step(run, labels, 0, 1.5, CLASSES, PALETTE)


def test_update_step_draws_every_anchor_of_step_one_on_labelled_axes(toy):
    run, labels = toy
    step1 = learn.anchor_step(run, labels, 0, CLASSES, PALETTE)
    step2 = learn.update_step(run, labels, 0, 0.5, CLASSES, PALETTE)
    shallow, _, updated = step2.picture.data
    assert len(shallow.x) == len(updated.x) == len(step1.picture.data[-1].x) >= 3
    assert len(step2.picture.layout.annotations) == len(shallow.x)  # one arrow a → â per anchor
    layout = step2.picture.layout
    assert layout.xaxis.title.text and layout.yaxis.title.text


def test_loss_step_temperature_axis_reads_the_swept_values(toy):
    run, labels = toy
    step, _, _ = learn.loss_step(run, labels, len(CLASSES), 0.1, 50, 0.5)
    axis = step.picture.layout.xaxis
    assert axis.type == "log" and list(axis.tickvals) == list(learn.TAU_SWEEP)
    assert list(axis.ticktext) == [f"{t:g}" for t in learn.TAU_SWEEP]  # "0.03 … 1", not plotly's "5 0.1 2 5 1"


def test_bane_steps_count_what_the_loss_selects(toy):
    run, labels = toy
    steps = learn.bane_steps(run, labels, 1, 30, PALETTE)
    grid = tuple(run.output.embeddings[1].shape[-2:])
    y = nearest_resize(torch.as_tensor(labels)[None], grid)
    config = LossConfig(bane_percent=30.0)  # the loss's own rule and distance stride (the defaults here)
    fine = fine_error_distance(run.logits, torch.as_tensor(labels)[None], config.bane_distance_stride)
    _, sel = bane_on_grid(run.logits, y, config, torch.Generator().manual_seed(0), fine)
    assert steps.counts["error pixels"] == int(sel.error.sum()) and steps.counts["kept (hard negatives)"] == int(
        sel.keep.sum())
    assert steps.error.picture.shape == run.rgb.shape and steps.kept.picture.dtype == np.uint8
    more = learn.bane_steps(run, labels, 1, 90, PALETTE)
    assert more.counts["kept (hard negatives)"] >= steps.counts["kept (hard negatives)"]


def test_loss_value_is_the_real_loss_and_sliders_change_it(toy):
    run, labels = toy
    value = learn.loss_value(run, labels, 5, 0.07, 40, 0.3)
    record = run_loss(run, labels, 5, bane_percent=40, tau=0.07, w_h=0.3)
    assert value["ccl"] == pytest.approx(record.terms["contextrast"]) and value["L_1"] == pytest.approx(record.layers[0].loss)
    assert learn.loss_value(run, labels, 5, 0.5, 40, 0.3)["ccl"] != pytest.approx(value["ccl"])
    step, chosen, defaults = learn.loss_step(run, labels, 5, 0.07, 40, 0.3)
    assert chosen == value and f"{chosen['ccl']:.4f}" in step.text and f"{defaults['ccl']:.4f}" in step.text
    for bad in (dict(tau=0.0), dict(w_h=2.0), dict(bane_percent=0.0)):
        with pytest.raises(ValueError):
            learn.loss_value(run, labels, 5, **{**dict(tau=0.1, bane_percent=50, w_h=0.5), **bad})


def test_bad_layer(toy):
    run, labels = toy
    with pytest.raises(ValueError, match="layer must be"):
        learn.anchor_step(run, labels, 4, CLASSES, PALETTE)
