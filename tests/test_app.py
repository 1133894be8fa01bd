"""The lab app launched in-process and driven through every tab's endpoint with gradio_client,
bad inputs included; the app must answer each with one message beside the control, keep the last result on
screen, and keep serving."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from data_paths import CAMVID
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from lab_helpers import drawn, free_port, is_kept, refusal, write_checkpoint  # noqa: E402

from app.main import build_ui, check_host, launch  # noqa: E402
from contextrast.analysis import attention  # noqa: E402
from contextrast.cli import main as cli_main  # noqa: E402
from contextrast.data.toy import TOY  # noqa: E402

SAMPLE = "toy/val_00000"
CLASSES = list(TOY.classes)
PREDICT = dict(opacity_value=0.5, shown=CLASSES)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    write_checkpoint(root / "checkpoints" / "toy-srm")
    write_checkpoint(root / "extra" / "toy-bilinear", align="bilinear", context="ppm")
    (root / "checkpoints" / "not-a-checkpoint").mkdir()  # no card: not listed
    args = argparse.Namespace(checkpoint=[str(root / "extra" / "toy-bilinear")],
                              checkpoints_dir=str(root / "checkpoints"), data=None, port=free_port(),
                              host="127.0.0.1", auth=None, insecure=False, max_file_size="1mb", max_side=256,
                              runs_dir=str(root / "runs"), no_worker=True)
    demo = launch(args, prevent_thread_lock=True)
    client = Client(f"http://127.0.0.1:{args.port}/", verbose=False)
    yield demo, client, root
    client.close() if hasattr(client, "close") else None
    demo.close()


def test_the_page_keeps_no_run_history(lab):
    """Gradio's run history stores every event in the browser's localStorage, re-writing it whole on each one; a
    new sample fires a dozen events in the lab, and in headless Chromium that was most of the 8-15 s it took."""
    demo, _, _ = lab
    assert demo.config["run_history"] is False


def save_png(path: Path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def toy_image(root: Path) -> str:
    from contextrast.data import build_dataset

    rgb, mask = build_dataset("toy", "val").load(1)
    save_png(root / "mask.png", mask.astype(np.uint8))
    return save_png(root / "upload.png", rgb)


def call(client: Client, api: str, *args, **kwargs):
    """A view's outputs (its tab and input messages checked empty)."""
    return drawn(client.predict(*args, api_name=api, **kwargs))


def refused(client: Client, api: str, *args, **kwargs) -> str:
    """The one message of a refused request (every output checked to stay as it was)."""
    return refusal(client.predict(*args, api_name=api, **kwargs))


# ---------------------------------------------------------------------------------------------- structure


def test_every_event_has_an_api_name_and_model_events_are_limited(lab):
    demo, client, _ = lab
    fns = list(demo.fns.values())
    assert fns and all(fn.api_name for fn in fns)
    heavy = [fn for fn in fns if fn.concurrency_id == "model"]
    assert {"predict", "srm", "crm", "crm_pick", "bane", "view_button", "view_sample"} <= {fn.api_name for fn in heavy}
    assert all(fn.concurrency_limit == 1 for fn in heavy)
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/predict", "/srm", "/crm", "/bane", "/load_sample"} <= set(endpoints)
    # what the page fires on its own is callable but not listed (app.lab.PAGE_EVENT)
    plumbing = {f"/{fn.api_name}" for fn in fns if fn.api_visibility == "undocumented"}
    assert {"/view_button", "/view_sample", "/predict_view_shown", "/in_view_predict", "/input_watcher_0_sample",
            "/model_menus", "/page_load_0"} <= plumbing and not plumbing & set(endpoints)
    # the Train tab (contextrast.jobs) is part of the launched app
    assert {"/train_submit", "/train_poll", "/train_cancel", "/train_stop", "/train_resume"} <= set(endpoints)


def test_checkpoints_are_discovered(lab):
    demo, _, _ = lab
    assert demo.lab.store.names() == ["toy-srm", "toy-bilinear"]


def test_no_checkpoints_still_builds_with_a_notice():
    demo = build_ui([])
    assert demo.lab.store.names() == []
    with pytest.raises(ValueError, match="no model"):
        demo.lab.store.get(None)


def test_host_needs_auth_or_insecure():
    check_host("127.0.0.1", None, False)
    check_host("0.0.0.0", ("u", "p"), False)
    check_host("0.0.0.0", None, True)
    with pytest.raises(ValueError, match="--auth"):
        check_host("0.0.0.0", None, False)
    assert cli_main(["app", "--host", "0.0.0.0", "--checkpoints-dir", "/nonexistent"]) == 2


# ---------------------------------------------------------------------------------------------- tabs


def view_in(demo: gr.Blocks, tab: str, **values) -> tuple[list, list]:
    """The Analyse button's event with `tab` in view, every other input at the page's default except `values`
    (by elem_id or label): the outputs of that tab's view, and those of every other tab."""
    fn = next(f for f in demo.fns.values() if f.api_name == "view_button")
    c = demo.lab.components
    named = {getattr(b, "elem_id", None) or getattr(b, "label", None): b for b in fn.inputs}
    given = {id(named[k]): v for k, v in values.items()}
    args = [tab if b is c["current_tab"] else None if b is c["image"] else given.get(id(b), b.preprocess(b.value))
            for b in fn.inputs]  # the image box: the listed sample is drawn, not the box
    shown = dict(zip(map(id, fn.outputs), fn.fn(*args, None), strict=True))
    page = next(p for p in demo.lab.pages if p.label == tab)
    mine = page.view["outputs"] if page.view else []
    return [shown[id(o)] for o in mine], [v for k, v in shown.items() if k not in set(map(id, mine))]


def test_analyse_redraws_the_tab_in_view_only(lab):
    """The Analyse button (and a new input) redraws the tab being looked at, in one event; the others keep what
    they show until opened."""
    demo, _, _ = lab
    srm, others = view_in(demo, "SRM offsets", Model="toy-srm", Sample=SAMPLE)
    assert srm[0] is not None and "Step" in srm[9] and srm[-2:] == ["", ""]
    assert others and all(is_kept(v) for v in others)
    nothing, kept = view_in(demo, "Embeddings", Model="toy-srm", Sample=SAMPLE)  # a tab without such a view
    assert nothing == [] and all(is_kept(v) for v in kept)
    crm, _ = view_in(demo, "CRM attention", Model="toy-srm", Sample=SAMPLE)
    assert "Query pixel" in crm[4]
    # opening a tab draws it (and makes it the one in view)
    tab = next(b for b in demo.blocks.values() if isinstance(b, gr.Tab) and b.label == "BANE")
    opened = [fn for fn in demo.fns.values() if (tab._id, "select") in [(t[0], t[1]) for t in fn.targets]]
    assert {fn.api_name for fn in opened} == {"bane_view_shown", "in_view_bane"}
    # every tab, with or without such a view, becomes the one in view when opened (no hidden tab is redrawn)
    tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    current = demo.lab.components["current_tab"]
    for tab in tabs:
        marks = [fn for fn in demo.fns.values() if (tab._id, "select") in [(t[0], t[1]) for t in fn.targets]
                 and fn.outputs == [current]]
        assert len(marks) == 1 and marks[0].fn() == tab.label, tab.label


def test_predict_tab(lab):
    _, client, _ = lab
    overlay, compare, legend, conf, ent, info = call(client, "/predict", "toy-srm", SAMPLE, None, None, 0.3,
                                                     ["disc", "bar"])
    assert overlay["type"] == "plotly" and Path(conf).is_file() and Path(ent).is_file()
    # hovering a pixel reads its class, probability and ground truth from the overlay's data
    hover = json.loads(overlay["plot"])["data"]
    assert any("customdata" in trace or "hovertemplate" in trace for trace in hover)
    assert compare is not None and "Pixel accuracy" in info and "background" in legend


def test_srm_tab_every_step_and_a_model_without_srm(lab):
    _, client, _ = lab
    for step in ("1/32 → 1/16", "1/16 → 1/8", "1/8 → 1/4"):
        out = call(client, "/srm", "toy-srm", SAMPLE, None, None, False, step, 16)
        assert all(o is not None for o in out) and step in out[-1]
    out = call(client, "/srm", "toy-bilinear", SAMPLE, None, None, False, "1/8 → 1/4", 16)
    assert out[0] is None and "bilinear" in out[-1]


def test_crm_tab(lab):
    _, client, _ = lab
    overlay, fig, y, x, info = call(client, "/crm", "toy-srm", SAMPLE, None, None, False, 30, 40)
    assert Path(overlay).is_file() and fig is not None and (y, x) == (30, 40) and "Query pixel" in info
    # the channel heatmap names its channels, and the stage-share strip has a colour bar
    traces = json.loads(fig["plot"])["data"]
    assert all(t.get("colorbar") for t in traces if t["type"] == "heatmap")
    overlay, fig, *_, info = call(client, "/crm", "toy-bilinear", SAMPLE, None, None, False, 30, 40)
    assert overlay is None and "no CRM" in info
    # a query pixel outside the image is refused with its range, not silently moved to the centre
    assert "lies outside" in refused(client, "/crm", "toy-srm", SAMPLE, None, None, False, 9999, 5)


def test_bane_tab_with_and_without_labels(lab):
    _, client, root = lab
    err, dist, samples, losses, info = call(client, "/bane", "toy-srm", SAMPLE, None, None, False, 30, "E1 (1/4)",
                                            "disc")
    assert Path(err).is_file() and samples is not None and losses is not None and "K_s = 30" in info
    image = toy_image(root)
    out = call(client, "/bane", "toy-srm", "(your upload)", handle_file(image), None, False, 50, "E2 (1/8)",
               "auto (most hard negatives)")
    assert out[0] is None and "needs a ground truth" in out[-1]
    out = call(client, "/bane", "toy-srm", "(your upload)", handle_file(image), handle_file(str(root / "mask.png")),
               False, 50, "E2 (1/8)", "auto (most hard negatives)")
    assert out[0] is not None and "sampled" in out[-1]


def test_load_sample(lab):
    _, client, _ = lab
    path = client.predict(SAMPLE, api_name="/load_sample")
    assert np.asarray(Image.open(path)).shape[:2] == (128, 160)


# ---------------------------------------------------------------------------------------------- bad input


def test_uploads_are_converted_with_notices(lab):
    _, client, root = lab
    gray = save_png(root / "gray.png", np.full((64, 80), 90, np.uint8))
    rgba = np.zeros((64, 80, 4), np.uint8)
    rgba[..., 3] = 128
    deep = root / "deep.png"
    Image.fromarray(np.full((64, 80), 40000, np.uint16)).save(deep)
    for path, words in ((gray, "Grayscale"), (save_png(root / "rgba.png", rgba), "Transparent"),
                        (str(deep), "16-bit")):
        info = call(client, "/predict", "toy-srm", "(your upload)", handle_file(path), None, **PREDICT)[-1]
        assert words in info


def test_huge_image_is_resized_with_a_visible_notice(lab):
    _, client, root = lab
    big = save_png(root / "big.png", (np.random.default_rng(0).random((300, 600, 3)) * 255).astype(np.uint8))
    info = call(client, "/predict", "toy-srm", "(your upload)", handle_file(big), None, **PREDICT)[-1]
    assert "resized from 600×300 to 256×128" in info


def test_bad_inputs_give_messages_and_the_app_keeps_serving(lab):
    _, client, root = lab
    corrupt = root / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    text = root / "notes.png"
    text.write_text("this is not an image")
    image = toy_image(root)
    wrong_size = save_png(root / "small_mask.png", np.zeros((10, 10), np.uint8))
    unknown = save_png(root / "bad_mask.png", np.full((128, 160), 7, np.uint8))
    cases = [
        ((handle_file(str(corrupt)), None), "image"),
        ((handle_file(str(text)), None), "image"),
        ((handle_file(image), handle_file(wrong_size)), "must match"),
        ((handle_file(image), handle_file(unknown)), "outside the allowed"),
        ((None, None), "Upload an image"),
    ]
    for (img, lbl), words in cases:  # one message under the inputs; the views stay as they were
        message = refused(client, "/predict", "toy-srm", "(your upload)", img, lbl, **PREDICT)
        assert words in message and "preprocess" not in message and "index 2" not in message
    with pytest.raises(AppError, match="not in the list of choices|unknown model"):
        call(client, "/predict", "nope", SAMPLE, None, None, **PREDICT)
    assert "forward pass" in call(client, "/predict", "toy-srm", SAMPLE, None, None, **PREDICT)[-1]


def test_uploads_over_max_file_size_are_refused(lab):
    _, client, root = lab
    noise = (np.random.default_rng(1).random((700, 700, 3)) * 255).astype(np.uint8)  # ~1.5 MB as PNG
    path = save_png(root / "noise.png", noise)
    assert Path(path).stat().st_size > 1_000_000
    with pytest.raises(Exception, match="(?i)exceeds the maximum file size|413|too large"):
        call(client, "/predict", "toy-srm", "(your upload)", handle_file(path), None, **PREDICT)
    assert "forward pass" in call(client, "/predict", "toy-srm", SAMPLE, None, None, **PREDICT)[-1]


def test_concurrent_requests(lab):
    _, client, _ = lab
    results, errors = {}, []

    def worker(i: int) -> None:
        try:
            c = Client(client.src, verbose=False)
            results[i] = call(c, "/crm", "toy-srm", f"toy/val_{i:05d}", None, None, False, 20, 20)[-1]
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 4 and all("Query pixel" in r for r in results.values())


def test_clicking_the_crm_image_picks_the_query_pixel(lab):
    from gradio import helpers
    from gradio.events import SelectData

    demo, _, _ = lab
    pick = next(fn for fn in demo.fns.values() if fn.api_name == "crm_pick")
    # the 160×128 overlay is shown enlarged 3× (app.display): a click at (152, 91) there is source pixel (50, 30)
    args, *_ = helpers.special_args(pick.fn, ["toy-srm", SAMPLE, None, None, False], None,
                                    SelectData(None, {"index": [152, 91], "value": None}))
    overlay, _, y, x, info = pick.fn(*args)[:5]
    # the picture is the 3× enlarged overlay with its colour bar on the right
    assert (y, x) == (30, 50) and overlay.shape[0] == 3 * 128 and overlay.shape[1] > 3 * 160 and "x=50, y=30" in info
    # the cross-hair is drawn at the source pixel: the enlarged picture is the source one, each pixel a 3×3 block
    expected, *_ = attention.render_spatial(demo.lab.context("toy-srm", SAMPLE, None, None).run, 30, 50)
    assert np.array_equal(overlay[1::3, 1:3 * 160:3], expected)




@pytest.mark.slow
@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"no CamVid at {CAMVID} (set $CAMVID)")
def test_data_spec_adds_a_browsable_labelled_split():
    from app.samples import Samples

    samples = Samples(f"camvid:{CAMVID}")
    names = [n for n in samples.names() if n.startswith("camvid:")]
    assert names
    rgb, labels, info = samples.load(names[0])
    assert rgb.shape[:2] == labels.shape and info.name == "camvid"


def test_default_model_matches_the_default_samples_classes(tmp_path):
    from app.first_page import default_model
    from app.state import ModelStore

    write_checkpoint(tmp_path / "a-other", classes=["x", "y", "z"])  # sorts first, but predicts other classes
    write_checkpoint(tmp_path / "b-toy")
    store = ModelStore([tmp_path / "a-other", tmp_path / "b-toy"])
    assert default_model(store, list(TOY.classes)) == "b-toy"
    assert default_model(store, None) == "a-other"  # an upload: no sample classes to match
    # of two models for the sample's classes, the one whose card reports the higher val mIoU
    write_checkpoint(tmp_path / "c-toy-better")
    card = json.loads((tmp_path / "c-toy-better" / "model_card.json").read_text())
    card["metrics"] = {"val_miou": 0.7}
    (tmp_path / "c-toy-better" / "model_card.json").write_text(json.dumps(card))
    both = ModelStore([tmp_path / "b-toy", tmp_path / "c-toy-better"])
    assert default_model(both, list(TOY.classes)) == "c-toy-better"
    # a CE model with a higher val mIoU still yields to one whose projection heads were trained: BANE and
    # Embeddings draw on the first page
    write_checkpoint(tmp_path / "d-toy-ce")
    card = json.loads((tmp_path / "d-toy-ce" / "model_card.json").read_text())
    card["metrics"], card["loss"] = {"val_miou": 0.9}, {"name": "ce"}
    (tmp_path / "d-toy-ce" / "model_card.json").write_text(json.dumps(card))
    three = ModelStore([tmp_path / "b-toy", tmp_path / "c-toy-better", tmp_path / "d-toy-ce"])
    assert default_model(three, list(TOY.classes)) == "c-toy-better"
    # the page opens on that model, and the class pickers of every tab start with its classes
    demo = build_ui([tmp_path / "a-other", tmp_path / "b-toy"], warm_up_umap=False)
    assert demo.lab.default_model == "b-toy" and demo.lab.default_classes() == CLASSES
    pickers = [c for c in demo.blocks.values() if isinstance(c, gr.CheckboxGroup) and c.label == "Classes shown"]
    assert pickers and [choice[0] for choice in pickers[0].choices] == CLASSES


def test_a_dataset_given_with_data_opens_the_page_on_its_images_and_model(tmp_path):
    """`contextrast app --data SPEC` is asked for to show that dataset: its samples come before the toy ones,
    so the first page shows one of its images with a model that predicts its classes."""
    root = tmp_path / "street"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.json").write_text('{"classes": ["x", "y", "z"]}')
    save_png(root / "images" / "a.png", np.full((32, 48, 3), 90, np.uint8))
    save_png(root / "masks" / "a.png", np.arange(32 * 48).reshape(32, 48).astype(np.uint8) % 3)
    write_checkpoint(tmp_path / "a-toy")
    write_checkpoint(tmp_path / "b-street", classes=["x", "y", "z"])
    demo = build_ui([tmp_path / "a-toy", tmp_path / "b-street"], f"folder:{root}", warm_up_umap=False)
    names = demo.lab.samples.names()
    assert names[0] == "street:val/a" and names[-1].startswith("toy/")
    assert demo.lab.default_model == "b-street" and demo.lab.default_classes() == ["x", "y", "z"]
