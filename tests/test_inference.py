"""engine.inference: sliding windows, flip and multi-scale averaging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contextrast.engine.inference import _window_starts, class_indices, predict_logits, sliding_window_logits
from contextrast.models import build_model


def pointwise_model(k: int = 4) -> nn.Module:
    """A 1×1 convolution: exactly translation-equivariant, so windows must reproduce the whole image."""
    torch.manual_seed(0)
    return nn.Conv2d(3, k, 1).eval()


class ColumnModel(nn.Module):
    """Logits that depend on the absolute column: flipping must be undone for the views to agree."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = torch.linspace(-2, 2, x.shape[-1]).expand(x.shape[0], 1, x.shape[-2], x.shape[-1])
        return torch.cat([cols, -cols, x[:, :1]], dim=1)


def test_window_starts_cover_the_image_and_end_flush():
    assert _window_starts(100, 32, 22) == [0, 22, 44, 66, 68]
    assert _window_starts(32, 32, 22) == [0]
    for size in (33, 50, 97):
        starts = _window_starts(size, 32, 21)
        covered = set().union(*(range(s, s + 32) for s in starts))
        assert covered == set(range(size)) and starts[-1] == size - 32


@pytest.mark.parametrize("shape", [(2, 3, 50, 70), (1, 3, 20, 70), (1, 3, 33, 33)])
def test_sliding_window_equals_whole_image_for_a_translation_equivariant_model(shape):
    model = pointwise_model()
    x = torch.randn(*shape)
    with torch.no_grad():
        whole = model(x)
        windows = sliding_window_logits(model, x, crop=(32, 32), stride_ratio=2 / 3)
    assert windows.shape == whole.shape
    torch.testing.assert_close(windows, whole, atol=1e-5, rtol=1e-5)
    probs = predict_logits(model, x, crop=(32, 32))
    torch.testing.assert_close(probs, whole.softmax(1), atol=1e-5, rtol=1e-5)


def test_windows_are_averaged_not_summed():
    class Ones(nn.Module):
        def forward(self, x):
            return torch.ones(x.shape[0], 2, *x.shape[-2:])

    out = sliding_window_logits(Ones(), torch.zeros(1, 3, 45, 61), crop=(16, 16), stride_ratio=0.5)
    torch.testing.assert_close(out, torch.ones(1, 2, 45, 61))


def test_flip_is_undone_before_averaging():
    model = ColumnModel()
    x = torch.randn(1, 3, 8, 10)
    p = model(x).softmax(1)
    p_flip = model(x.flip(-1)).softmax(1).flip(-1)
    torch.testing.assert_close(predict_logits(model, x, flip=True), (p + p_flip) / 2)
    assert not torch.allclose(p, p_flip)  # the model really is not flip-invariant


def test_multi_scale_averages_resized_probabilities():
    model = pointwise_model()
    x = torch.randn(1, 3, 24, 32)
    out = predict_logits(model, x, scales=(0.5, 1.0, 1.5))
    assert out.shape == (1, 4, 24, 32)
    torch.testing.assert_close(out.sum(1), torch.ones(1, 24, 32))
    single = predict_logits(model, x)
    assert not torch.allclose(out, single)
    logits = predict_logits(model, x, scales=(0.5, 1.0), return_logits=True)
    torch.testing.assert_close(logits.softmax(1), predict_logits(model, x, scales=(0.5, 1.0)))


def test_scrnet_sliding_window_on_a_larger_image_keeps_the_shape():
    model = build_model({"num_classes": 5, "decoder_channels": 16, "embed_dim": 8}).eval()
    x = torch.randn(1, 3, 96, 130)
    out = predict_logits(model, x, crop=(64, 64), flip=True, scales=(0.75, 1.0))
    assert out.shape == (1, 5, 96, 130)
    assert torch.isfinite(out).all()
    assert not torch.is_inference_mode_enabled()


@pytest.mark.parametrize("kwargs,match", [
    ({"scales": ()}, "scales"),
    ({"scales": (0.0,)}, "scales"),
    ({"crop": (16, 16), "stride_ratio": 0.0}, "stride_ratio"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict_logits(pointwise_model(), torch.randn(1, 3, 40, 40), **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "cropped view"])
def test_class_indices_are_argmax_ties_and_nan_included(dtype, layout):
    scores = torch.randint(0, 3, (2, 11, 19, 23), generator=torch.Generator().manual_seed(0)).to(dtype)  # many ties
    scores[0, :, 0, 0] = float("nan")
    scores[1, 4, 3, 3] = float("nan")
    if layout == "channels_last":
        scores = scores.contiguous(memory_format=torch.channels_last)
    elif layout == "cropped view":
        scores = scores[:, :, :17, :20]
    assert torch.equal(class_indices(scores), scores.argmax(1))
    assert torch.equal(class_indices(scores[1], dim=0), scores[1].argmax(0))
    assert class_indices(scores).dtype == torch.int64
