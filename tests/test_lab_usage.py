"""What a person meets in the lab, checked in-process: CamVid's own annotations accepted, menus that list only
checkpoints that can work, a Train form whose defaults start, job checkpoints listed after a page reload, colour
bars on the scalar maps, the thumbnail gallery and a quiet start-up."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import pytest
from data_paths import CAMVID as CAMVID_DIR
from lab_helpers import free_port, write_checkpoint
from PIL import Image

from app.display import enlarge
from app.inputs import resolve_input
from app.main import build_ui, launch
from app.samples import UPLOAD
from contextrast.data.classes import CAMVID
from contextrast.data.toy import TOY

SAMPLE = "toy/val_00000"


def camvid_checkpoint(path: Path) -> Path:
    """A tiny checkpoint for CamVid's 11 classes whose card names the dataset, as a shipped CamVid model's does."""
    write_checkpoint(path, classes=list(CAMVID.classes))
    card = json.loads((path / "model_card.json").read_text())
    card["dataset"] = "camvid"
    (path / "model_card.json").write_text(json.dumps(card))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("usage")
    write_checkpoint(root / "toy-a")
    write_checkpoint(root / "toy-b", align="bilinear", context="ppm")
    camvid_checkpoint(root / "camvid-tiny")
    demo = build_ui([root / "toy-a", root / "toy-b", root / "camvid-tiny"], warm_up_umap=False,
                    runs_dir=root / "runs")
    return demo, root


def fn_named(demo: gr.Blocks, name: str):
    return next(fn for fn in demo.fns.values() if fn.api_name == name)


def block_labelled(demo: gr.Blocks, label: str):
    return next(b for b in demo.blocks.values() if getattr(b, "label", None) == label)


def choices(component) -> list[str]:
    return [c[0] if isinstance(c, (list, tuple)) else c for c in component.choices]


# ------------------------------------------------------------------------------------------------ inputs


def test_camvid_void_label_in_an_uploaded_label_map_is_ignore(lab):
    demo, root = lab
    card = demo.lab.store.cards["camvid-tiny"]
    rgb = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    labels = np.zeros((64, 96), np.uint8)
    labels[:, :10] = 11  # CamVid's void
    labels[:, 10:20] = 3
    Image.fromarray(rgb).save(root / "street.png")
    Image.fromarray(labels).save(root / "street_annot.png")
    got = resolve_input(demo.lab.samples, card, UPLOAD, str(root / "street.png"), str(root / "street_annot.png"),
                        2048)
    assert (got.labels[:, :10] == 255).all() and (got.labels[:, 10:20] == 3).all()
    # a value that is neither a class nor void is still refused
    labels[0, 0] = 12
    Image.fromarray(labels).save(root / "bad_annot.png")
    with pytest.raises(ValueError, match="outside the allowed"):
        resolve_input(demo.lab.samples, card, UPLOAD, str(root / "street.png"), str(root / "bad_annot.png"), 2048)


@pytest.mark.skipif(not (CAMVID_DIR / "valannot").is_dir(), reason=f"no CamVid at {CAMVID_DIR} (set $CAMVID)")
def test_camvid_own_annotation_is_accepted_as_an_upload(lab):
    demo, _ = lab
    name = sorted((CAMVID_DIR / "val").glob("*.png"))[0].name
    got = resolve_input(demo.lab.samples, demo.lab.store.cards["camvid-tiny"], UPLOAD, str(CAMVID_DIR / "val" / name),
                        str(CAMVID_DIR / "valannot" / name), 2048)
    raw = np.asarray(Image.open(CAMVID_DIR / "valannot" / name))
    assert got.labels.shape == raw.shape and ((got.labels == 255) == (raw == 11)).all()


# ------------------------------------------------------------------------------------------------ menus


def test_second_checkpoint_menus_list_only_checkpoints_with_the_same_classes(lab):
    demo, _ = lab
    assert demo.lab.default_model in {"toy-a", "toy-b"}
    for label in ("Second checkpoint, same pixels", "Compare with checkpoint B", "Checkpoint B for the split"):
        listed = choices(block_labelled(demo, label))
        assert "camvid-tiny" not in listed and listed[0] == "(none)" and len(listed) == 2, (label, listed)
    # switching to the CamVid model re-lists the menus for its classes
    menus = fn_named(demo, "model_menus")  # one event updates every tab's menus
    labels = [getattr(o, "label", None) for o in menus.outputs]
    updates = menus.fn("camvid-tiny")
    assert len(updates) == len(labels)
    b = labels.index("Compare with checkpoint B")
    assert [choices(u) for u in updates[b:b + 2]] == [["(none)"], ["(none)"]]  # no other CamVid model here
    # the split evaluation has its own checkpoint B: it does not borrow the one of "This image"
    split_inputs = [getattr(c, "label", None) for c in fn_named(demo, "errors_split").inputs]
    assert "Checkpoint B for the split" in split_inputs and "Compare with checkpoint B" not in split_inputs


# ------------------------------------------------------------------------------------------------ train


def test_train_form_defaults_fine_tune_the_active_model_and_can_start(lab):
    demo, root = lab
    train = demo.tabs["train"]
    c = train.components
    assert Path(c["base"].value) == root / demo.lab.default_model  # fine-tuning, not from scratch
    assert (c["crop_h"].value, c["crop_w"].value) == (128, 160) and c["data"].value == "toy"
    assert c["iterations"].value <= 200  # minutes on a CPU, not an hour
    names = ("base", "data", "loss", "iterations", "lr", "batch", "crop_h", "crop_w", "device", "gpus", "name",
             "overrides")
    out = train.handlers["submit"](*[c[n].value for n in names])
    assert out[0].startswith("Submitted job"), out[0]


def test_a_finished_jobs_checkpoint_is_listed_after_a_page_reload(lab):
    demo, root = lab
    write_checkpoint(root / "runs" / "jobs" / "20261203-000000-abcd" / "final")
    assert "final" not in demo.lab.store.names()
    menu = demo.tabs["train"].handlers["refresh_models"]()
    assert "final" in demo.lab.store.names() and "final" in choices(menu)
    # it is wired to the page's load event, so a reload runs it
    loads = [fn for fn in demo.fns.values() if (fn.api_name or "").startswith("page_load_")]
    assert any(block_labelled(demo, "Model") in fn.outputs for fn in loads)


# ------------------------------------------------------------------------------------------------ pictures


def test_scalar_maps_carry_a_colour_bar(lab):
    demo, _ = lab
    rgb = demo.lab.samples.load(SAMPLE)[0]
    shown_width = enlarge(rgb).shape[1]
    predict = fn_named(demo, "predict").fn("toy-a", SAMPLE, None, None, 0.5, list(TOY.classes))
    confidence, entropy = predict[3], predict[4]
    assert confidence.shape[1] > shown_width and entropy.shape[1] > shown_width
    srm = fn_named(demo, "srm").fn("toy-a", SAMPLE, None, None, False, 2, 24, None)
    for picture in (srm[3], srm[5], srm[6]):  # |Δ|, |Δ − Δ′|, mask entropy
        assert picture.shape[1] > shown_width
    bane = fn_named(demo, "bane").fn("toy-a", SAMPLE, None, None, False, 30, 1, "disc", None)
    assert bane[1].shape[1] > shown_width  # the distance map


def test_keeping_the_colour_scale_draws_two_images_on_one_scale(lab):
    demo, _ = lab
    srm = fn_named(demo, "srm").fn

    class Request:
        session_hash = "one-scale"

    first = srm("toy-a", "toy/val_00000", None, None, True, 2, 24, Request())
    kept = demo.lab.kept_scales(Request(), True, "srm")
    assert kept and first[-2:] == ["", ""]
    srm("toy-a", "toy/val_00001", None, None, True, 2, 24, Request())
    assert demo.lab.kept_scales(Request(), True, "srm") == kept  # the second image reused the first one's scale
    assert demo.lab.kept_scales(Request(), False, "srm") == {}


# ------------------------------------------------------------------------------------------------ page


def test_thumbnail_gallery_opens_a_sample(lab):
    from gradio import helpers
    from gradio.events import SelectData

    demo, _ = lab
    pictures = fn_named(demo, "thumbnails").fn("toy")
    assert len(pictures) > 1 and cv2.imread(str(pictures[0][0])).shape[0] == 72
    # the same files for every page load (that they are not encoded again: tests/test_app_start.py), written again
    # when the cache clean-up removed them
    assert fn_named(demo, "thumbnails").fn("toy") == pictures
    pictures[0][0].unlink()
    again = fn_named(demo, "thumbnails").fn("toy")
    assert again[0][0].is_file() and [c for _, c in again] == [c for _, c in pictures]
    opened = fn_named(demo, "open_thumbnail")
    args, *_ = helpers.special_args(opened.fn, ["toy"], None, SelectData(None, {"index": 1, "value": None}))
    name, rgb = opened.fn(*args)
    assert name == demo.lab.samples.names_in_set("toy")[1] and rgb.shape[:2] == (128, 160)


def test_a_row_of_the_image_browser_opens_its_image(lab):
    from gradio import helpers
    from gradio.events import SelectData

    demo, _ = lab
    ranked = fn_named(demo, "images_rank").fn("toy-a", "toy", "mIoU (worst first)", [], 3, None)
    rows = ranked[0]
    assert len(rows) == 3 and ranked[-2] == ""
    opened = fn_named(demo, "images_open")
    args, *_ = helpers.special_args(opened.fn, ["toy"], None,
                                    SelectData(None, {"index": [0, 1], "value": rows[0][1], "row_value": rows[0]}))
    name, rgb = opened.fn(*args)
    assert name == rows[0][1] and rgb.shape[:2] == (128, 160)


def test_only_events_that_read_the_image_clear_the_message_under_it(lab):
    """A message about the upload stays until the image or label map changes: the Train tab's timer, the split
    evaluation or the image browser leave it alone."""
    demo, _ = lab
    poll = fn_named(demo, "train_poll").fn(None)
    assert poll[-2] == "" and poll[-1].get("__type__") == "update" and "value" not in poll[-1]
    view = fn_named(demo, "predict").fn("toy-a", SAMPLE, None, None, 0.5, list(TOY.classes))
    assert view[-1] == ""  # a view of the input: its message is cleared when it draws


def test_start_up_prints_the_address_and_no_share_hint(tmp_path, capsys):
    write_checkpoint(tmp_path / "checkpoints" / "toy-a")
    args = argparse.Namespace(checkpoint=[], checkpoints_dir=str(tmp_path / "checkpoints"), data=None,
                              port=free_port(), host="127.0.0.1", auth=None, insecure=False, max_file_size="1mb",
                              max_side=256, runs_dir=str(tmp_path / "runs"), no_worker=True)
    demo = launch(args, prevent_thread_lock=True)
    try:
        out = capsys.readouterr().out
        assert "Contextrast Lab: http://127.0.0.1:" in out and "share=True" not in out
    finally:
        demo.close()


# ------------------------------------------------------------------------------------------------ pictures say what they show
def test_bane_says_when_every_distance_is_the_same():
    from contextrast.analysis.bane import distance_note

    thin = np.full((6, 8), np.nan)
    thin[2, 1:7] = 1.0  # a one-pixel-thin error region: every pixel at distance 1
    assert "one colour" in distance_note(thin, 1) and "random among the ties" in distance_note(thin, 1)
    assert "keeps all of them" in distance_note(thin, 1, rule="percentile")
    thick = thin.copy()
    thick[3, 2:6] = 2.0
    assert distance_note(thick, 1) == "" and distance_note(np.full((4, 4), np.nan), 0) == ""


def test_crm_says_when_the_spatial_attention_ignores_the_query():
    from types import SimpleNamespace

    import torch

    from contextrast.analysis.attention import query_dependence_note

    def run_with(spatial):
        crm = SimpleNamespace(channel_attn=torch.full((1, 4, 4), 0.25), spatial_attn=spatial[None])
        return SimpleNamespace(output=SimpleNamespace(crm=crm))

    same_row = torch.softmax(torch.randn(1, 12), -1).expand(12, 12)
    assert "same for every query pixel" in query_dependence_note(run_with(same_row))
    assert query_dependence_note(run_with(torch.eye(12))) == ""


def test_srm_arrow_caption_says_shortened_when_the_factor_is_below_one():
    from contextrast.analysis.offsets import arrow_scale, arrow_scale_sentence

    flow = np.zeros((2, 8, 8), np.float32)
    flow[0] = 6.0  # 6 grid px = 24 image px on a 32×32 image, longer than one arrow spacing (4 px)
    factor = arrow_scale((32, 32, 3), flow, max_arrows=8)
    assert factor < 1 and "shortened" in arrow_scale_sentence(factor) and "lengthened" not in arrow_scale_sentence(factor)
    assert "lengthened" in arrow_scale_sentence(4.0) and "true length" in arrow_scale_sentence(1.0)


SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "camvid-scrnet-contextrast"


@pytest.mark.skipif(not (CAMVID_DIR / "val").is_dir(), reason="CamVid not found")
def test_shipped_srm_offsets_are_not_a_ring_at_the_border():
    """The |Δ| maps of the shipped CamVid model: the outermost ring of grid cells does not reach much further than
    the interior, so it does not set the colour scale (the bounded offsets of METHOD.md §1)."""
    from contextrast.analysis.forward import run_model
    from contextrast.analysis.offsets import magnitude
    from contextrast.engine.checkpoint import load_checkpoint

    model, _ = load_checkpoint(SHIPPED)
    rgb = np.asarray(Image.open(sorted((CAMVID_DIR / "val").glob("*.png"))[0]).convert("RGB"))
    run = run_model(model.eval(), rgb)
    for step in run.output.srm:
        mag = magnitude(step.offset[0].float().numpy())
        inner = mag[1:-1, 1:-1]
        ring = np.concatenate([mag[0], mag[-1], mag[1:-1, 0], mag[1:-1, -1]])
        assert ring.mean() < 1.5 * inner.mean()
        assert np.percentile(mag, 99) <= 1.05 * np.percentile(inner, 99)


# ------------------------------------------------------------------------------------------------ Train tab
def test_train_eta_does_not_jump_with_each_log_interval(monkeypatch):
    """The worker's own ETA (`eta_s`, from the last log interval's speed) jumps with validation pauses and a busy
    machine; the tab's ETA is the mean rate since it first saw the job, so successive readings move smoothly."""
    from app.tabs import train as train_tab

    clock = [1000.0]
    monkeypatch.setattr(train_tab.time, "time", lambda: clock[0])
    watch, etas, jumpy, iteration = train_tab.EtaWatch(), [], [], 0
    seconds_per_10 = [10, 10, 10, 10, 6, 30, 10, 25, 10, 10, 8, 12, 10, 10]  # a validation pause, a busy spell
    for dt in seconds_per_10:
        clock[0] += dt
        iteration += 10
        jumpy.append((200 - iteration) * dt / 10)  # what the last interval's speed alone says
        etas.append(watch({"id": "j1", "started": "t0", "iteration": iteration, "total": 200, "eta_s": jumpy[-1]}))

    def worst_jump(values):
        return max(max(a / b, b / a) for a, b in zip(values, values[1:]))

    assert etas[0] == jumpy[0]  # the first reading has no rate of its own yet: the worker's estimate stands in
    assert worst_jump(jumpy[1:]) > 4 and worst_jump(etas[1:]) < 1.5
    assert all(b < a for a, b in zip(etas[-6:], etas[-5:]))  # once the rate has settled it counts down
