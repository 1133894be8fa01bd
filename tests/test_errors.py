"""contextrast.analysis.errors: outcome maps, comparison counts that add up, figures showing the given numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contextrast.analysis import errors
from contextrast.data import build_dataset
from contextrast.engine.evaluate import evaluate
from contextrast.models import build_model

TRUTH = np.array([[0, 0, 1, 1], [0, 2, 1, 255], [2, 2, 1, 1]])
PRED = np.array([[0, 1, 1, 1], [0, 2, 0, 0], [2, 1, 1, 0]])


def test_outcome_map_per_class_and_overall():
    codes = errors.outcome_map(PRED, TRUTH, cls=1)
    assert codes[0, 2] == errors.TP and codes[0, 1] == errors.FP and codes[1, 2] == errors.FN
    assert codes[1, 3] == errors.IGNORED and codes[0, 0] == errors.NONE
    overall = errors.outcome_map(PRED, TRUTH)
    valid = TRUTH != 255
    assert ((overall == errors.TP) == (valid & (PRED == TRUTH))).all()
    assert ((overall == errors.WRONG) == (valid & (PRED != TRUTH))).all()
    rgb = np.full((3, 4, 3), 100, np.uint8)
    view = errors.render_outcomes(rgb, PRED, TRUTH, cls=1, only_mistakes=True)
    assert view.counts == {"true positive": 3, "false positive": 2, "false negative": 2}
    assert (view.picture[0, 2] == 50).all()  # a TP left undrawn with only mistakes: the dimmed image
    with pytest.raises(ValueError, match="one size"):
        errors.outcome_map(PRED[:2], TRUTH)


def test_comparison_counts_add_up():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (40, 50))
    truth[:5] = 255
    a, b = rng.integers(0, 4, (40, 50)), rng.integers(0, 4, (40, 50))
    c = errors.compare(a, b, truth)
    valid = truth != 255
    assert c.fixed + c.broken + c.both_right + c.both_wrong == c.labelled == valid.sum()
    assert c.fixed == (valid & (a != truth) & (b == truth)).sum()
    assert c.broken == (valid & (a == truth) & (b != truth)).sum()
    assert sum(f for f, _ in c.per_class.values()) == c.fixed and sum(b_ for _, b_ in c.per_class.values()) == c.broken
    swapped = errors.compare(b, a, truth)
    assert (swapped.fixed, swapped.broken) == (c.broken, c.fixed)
    assert "fixes" in c.summary() and errors.render_comparison(np.zeros((40, 50, 3), np.uint8),
                                                               errors.comparison_map(a, b, truth)).shape == (40, 50, 3)


def test_confusion_figure_shows_the_matrix():
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 0]])
    fig = errors.confusion_figure(cm, ["a", "b", "c"])
    assert np.array_equal(np.asarray(fig.data[0].z), cm)
    z = np.asarray(errors.confusion_figure(cm, ["a", "b", "c"], normalised=True).data[0].z)
    assert np.allclose(z[:2].sum(1), 1) and (z[2] == 0).all()
    with pytest.raises(ValueError, match="confusion must be"):
        errors.confusion_figure(cm, ["a", "b"])


def test_split_comparison_matches_per_image_counts_and_evaluate():
    torch.manual_seed(0)
    a = build_model({"num_classes": 5, "decoder_channels": 16}).eval()
    torch.manual_seed(1)
    b = build_model({"num_classes": 5, "decoder_channels": 16, "align": "bilinear"}).eval()
    ds = build_dataset("toy:n=3,size=64x80", "val")
    seen = []
    total = errors.compare_on_dataset(a, b, ds, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)] and total.images == 3
    metrics = evaluate(a, ds, boundary=False)
    assert total.labelled == int(np.asarray(metrics["confusion"]).sum())
    assert total.both_right + total.broken == int(np.trace(np.asarray(metrics["confusion"])))  # A's right pixels
    stopped = errors.compare_on_dataset(a, b, ds, should_stop=lambda: True)
    assert stopped.images == 0 and stopped.labelled == 0
    fig = errors.iou_figure(metrics)
    assert [t.name for t in fig.data] == ["IoU"]
    assert len(errors.per_class_table(metrics)) == 5
