"""engine.evaluate and the `contextrast eval` / `contextrast predict` commands on tiny checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from contextrast.cli import main
from contextrast.engine.card import ModelCard
from contextrast.engine.checkpoint import save_checkpoint
from contextrast.engine.evaluate import evaluate
from contextrast.engine.metrics import ConfusionMatrix
from contextrast.models import build_model

CLASSES = ["background", "disc", "rectangle", "bar", "triangle"]
PALETTE = [[90, 90, 90], [230, 70, 70], [70, 180, 80], [250, 220, 40], [60, 110, 230]]


class ListDataset(torch.utils.data.Dataset):
    """The data package's sample dicts, from tensors held in memory."""

    def __init__(self, images, masks, classes):
        self.images, self.masks = images, masks
        self.info = SimpleNamespace(classes=tuple(classes), num_classes=len(classes), ignore_index=255,
                                    palette=tuple((0, 0, 0) for _ in classes))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "mask": self.masks[i], "index": i, "name": f"s{i}"}


class ChannelArgmax(nn.Module):
    """Predicts the class whose input channel is largest: a 'model' whose output the test controls."""

    num_classes = 3

    def forward(self, x):
        return x * 10.0


def controlled_dataset(n: int = 5, size: tuple[int, int] = (12, 16)):
    g = torch.Generator().manual_seed(0)
    images = [torch.randn(3, *size, generator=g) for _ in range(n)]
    masks = [torch.randint(0, 3, size, generator=g) for _ in range(n)]
    for m in masks:
        m[:2] = 255
    return ListDataset(images, masks, ["a", "b", "c"])


def test_evaluate_matches_the_confusion_matrix_of_the_predictions():
    ds = controlled_dataset()
    calls = []
    out = evaluate(ChannelArgmax(), ds, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    cm = ConfusionMatrix(3)
    for i in range(len(ds)):
        cm.update(ds.images[i].argmax(0), ds.masks[i])
    expected = cm.compute().to_dict(["a", "b", "c"])
    assert out["confusion"] == expected["confusion"]
    assert out["miou"] == pytest.approx(expected["miou"]) and out["aacc"] == pytest.approx(expected["aacc"])
    assert set(out["per_class_iou"]) == {"a", "b", "c"} and set(out["per_class_boundary_iou"]) == {"a", "b", "c"}
    assert 0 <= out["boundary_iou"] <= 1
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert out["images"] == 5 and not out["cancelled"]
    json.dumps(out, allow_nan=False)


def test_evaluate_can_be_cancelled_and_limited():
    ds = controlled_dataset()
    done = []
    out = evaluate(ChannelArgmax(), ds, batch_size=1, progress=lambda d, t: done.append(d),
                   should_stop=lambda: len(done) >= 2, boundary=False)
    assert out["cancelled"] and out["images"] == 2 and "boundary_iou" not in out
    assert evaluate(ChannelArgmax(), ds, max_images=3)["images"] == 3


def test_evaluate_refuses_a_class_count_mismatch_and_restores_train_mode():
    ds = controlled_dataset(2, size=(32, 40))
    model = build_model({"num_classes": 4, "decoder_channels": 16, "embed_dim": 8})
    with pytest.raises(ValueError, match="dataset has 3 classes but the model predicts 4"):
        evaluate(model, ds)
    ds.info.num_classes, ds.info.classes = 4, ("a", "b", "c", "d")
    model.train()
    evaluate(model, ds, max_images=1, boundary=False)
    assert model.training


def save_tiny_checkpoint(path: Path, num_classes: int = 5) -> Path:
    torch.manual_seed(0)
    model = build_model({"num_classes": num_classes, "decoder_channels": 16, "embed_dim": 8})
    card = ModelCard(name="tiny", model=dict(model.config.__dict__), dataset="toy", classes=CLASSES[:num_classes],
                     palette=PALETTE[:num_classes])
    return save_checkpoint(path, model, card)


def _toy_available() -> bool:
    try:
        from contextrast.data import DATASETS
    except ImportError:
        return False
    return "toy" in DATASETS


needs_toy = pytest.mark.skipif(not _toy_available(), reason="the data package's `toy` dataset is not available yet")


@needs_toy
def test_eval_cli_prints_a_table_and_writes_json(tmp_path, capsys):
    ck = save_tiny_checkpoint(tmp_path / "ck")
    out = tmp_path / "res" / "m.json"
    rc = main(["eval", "--checkpoint", str(ck), "--data", "toy:n=3,size=48x64", "--split", "val",
               "--json", str(out), "--flip", "--scales", "0.75", "1.0", "--crop", "32", "32", "--device", "cpu",
               "--max-images", "2", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "mIoU" in text and "triangle" in text and "boundary IoU" in text
    m = json.loads(out.read_text())
    assert m["images"] == 2 and m["flip"] and m["scales"] == [0.75, 1.0] and m["crop"] == [32, 32]
    assert len(m["confusion"]) == 5 and set(m["per_class_iou"]) == set(CLASSES)


@needs_toy
def test_eval_cli_refuses_a_checkpoint_with_another_class_count(tmp_path, capsys):
    ck = save_tiny_checkpoint(tmp_path / "ck", num_classes=3)
    rc = main(["eval", "--checkpoint", str(ck), "--data", "toy:n=2,size=48x64", "--split", "val", "--no-progress"])
    assert rc == 2
    assert "has 5 classes but checkpoint" in capsys.readouterr().err


def test_eval_cli_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    rc = main(["eval", "--checkpoint", str(tmp_path / "none"), "--data", "toy", "--split", "val", "--device", "cpu"])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_predict_cli_writes_masks_and_reports_unreadable_images(tmp_path, capsys):
    ck = save_tiny_checkpoint(tmp_path / "ck")
    rng = np.random.default_rng(0)
    good = tmp_path / "street.png"
    cv2.imwrite(str(good), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    rc = main(["predict", "--checkpoint", str(ck), str(broken), str(good), str(tmp_path / "missing.jpg"),
               "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "broken.png" in err and "missing.jpg" in err and "2 of 3 images" in err
    mask = cv2.imread(str(tmp_path / "out" / "street_mask.png"))[..., ::-1]
    overlay = cv2.imread(str(tmp_path / "out" / "street_overlay.png"))
    assert mask.shape == (40, 56, 3) and overlay.shape == (40, 56, 3)
    colours = {tuple(c) for c in mask.reshape(-1, 3).tolist()}
    assert colours <= {tuple(c) for c in PALETTE}


def test_eval_and_predict_help_show_examples(capsys):
    for command in ("eval", "predict"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "examples:" in capsys.readouterr().out


SHIPPED_CAMVID = sorted(p for p in (Path(__file__).resolve().parents[1] / "checkpoints").glob("camvid-*") if p.is_dir())


@pytest.mark.parametrize("listed", [True, False], ids=["test.txt", "folders"])
@pytest.mark.parametrize("checkpoint", SHIPPED_CAMVID, ids=lambda p: p.name)
def test_eval_of_a_shipped_checkpoint_runs_on_the_camvid_test_layout(tmp_path, capsys, checkpoint, listed):
    """`contextrast eval --checkpoint checkpoints/<name> --data camvid:ROOT --split test`, on a
    SegNet-layout test split (233 images there; two synthetic ones here, with a `test.txt` holding the
    foreign /SegNet/CamVid prefix, or only the folders)."""
    rng = np.random.default_rng(0)
    (tmp_path / "test").mkdir()
    (tmp_path / "testannot").mkdir()
    lines = []
    for name in ("0001TP_008550.png", "Seq05VD_f02370.png"):
        cv2.imwrite(str(tmp_path / "test" / name), rng.integers(0, 256, (360, 480, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / "testannot" / name), rng.integers(0, 12, (360, 480), dtype=np.uint8))
        lines.append(f"/SegNet/CamVid/test/{name} /SegNet/CamVid/testannot/{name}")
    if listed:
        (tmp_path / "test.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.json"
    rc = main(["eval", "--checkpoint", str(checkpoint), "--data", f"camvid:{tmp_path}", "--split", "test",
               "--json", str(out), "--no-progress"])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "mIoU" in text.out and "Bicyclist" in text.out
    assert json.loads(out.read_text())["images"] == 2
