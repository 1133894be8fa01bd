"""Evaluation throughput changes no figure: batching, loading ahead in a thread, the single-view fast path,
and the precision default (fp32 unless the CPU has bf16 units)."""

from __future__ import annotations

import threading

import pytest
import torch

from contextrast.data import build_dataset
from contextrast.engine import precision as prec
from contextrast.engine.evaluate import _batches, evaluate, loaded_ahead
from contextrast.engine.inference import predict_labels, predict_logits
from contextrast.models import build_model


class MixedSizes(torch.utils.data.Dataset):
    """The toy set with every third sample cropped to another size, to break batches; records reader threads."""

    def __init__(self, base):
        self.base, self.info, self.threads = base, base.info, set()

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.threads.add(threading.current_thread().name)
        s = dict(self.base[i])
        if i % 3 == 2:
            s["image"], s["mask"] = s["image"][:, :48], s["mask"][:48]
        return s


@pytest.fixture(scope="module")
def toy_model_and_data():
    torch.manual_seed(0)
    model = build_model({"num_classes": 5, "decoder_channels": 16, "embed_dim": 16}).eval()
    return model, MixedSizes(build_dataset("toy:n=9,size=64x80", "val"))


def test_batched_eval_with_a_loader_thread_gives_the_per_image_metrics(toy_model_and_data):
    model, data = toy_model_and_data
    one = evaluate(model, data, batch_size=1, workers=0)
    data.threads.clear()
    batched = evaluate(model, data, batch_size=4, workers=1)
    assert data.threads and all(name.startswith("eval-loader") for name in data.threads)
    assert batched["confusion"] == one["confusion"]
    assert batched["per_class_boundary_iou"] == one["per_class_boundary_iou"]
    assert batched["miou"] == one["miou"] and batched["images"] == one["images"] == 9


def test_batches_keep_order_and_break_where_the_size_changes(toy_model_and_data):
    _, data = toy_model_and_data
    batches = list(_batches(loaded_ahead(data, len(data), workers=1, lookahead=3), 4))
    assert [[s["index"] for s in b] for b in batches] == [[0, 1], [2], [3, 4], [5], [6, 7], [8]]
    assert [s["index"] for s in loaded_ahead(data, 5, workers=0)] == [0, 1, 2, 3, 4]


def test_single_view_labels_are_the_argmax_of_the_averaged_probabilities(toy_model_and_data):
    model, data = toy_model_and_data
    x = torch.stack([data[0]["image"], data[1]["image"]])
    expected = predict_logits(model, x).argmax(1)
    assert torch.equal(predict_labels(model, x), expected)
    assert torch.equal(predict_labels(model, x, crop=(128, 128)), expected)  # the image fits the crop: one view
    assert torch.equal(predict_labels(model, x, flip=True), predict_logits(model, x, flip=True).argmax(1))


def test_precision_auto_is_bf16_only_where_the_cpu_has_bf16_units(monkeypatch):
    assert prec.cpu_bf16_units(frozenset({"avx2", "fma"})) is None
    assert prec.cpu_bf16_units(frozenset({"avx512f", "avx512_bf16"})) == "avx512_bf16"
    assert prec.cpu_bf16_units(frozenset({"amx_bf16", "avx512_bf16"})) == "amx_bf16"
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda flags=None: None)
    assert prec.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda flags=None: "avx512_bf16")
    assert prec.resolve_precision("auto", "cpu") == ("bf16" if prec.BF16_KEEPS_PREDICTIONS else "fp32")
    assert prec.resolve_precision("fp32", "cpu") == "fp32"  # the flag that turns bf16 off
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        prec.resolve_precision("fp16", "cpu")


def test_bf16_precision_runs_the_forward_in_bf16_and_returns_fp32(toy_model_and_data):
    model, data = toy_model_and_data
    x = data[0]["image"][None]
    seen = []
    handle = model.head.classifier.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        probs = predict_logits(model, x, precision="bf16")
    finally:
        handle.remove()
    assert seen == [torch.bfloat16] and probs.dtype == torch.float32
    out = evaluate(model, data, precision="fp32", max_images=2)
    assert out["precision"] == "fp32" and out["batch_size"] == 4
