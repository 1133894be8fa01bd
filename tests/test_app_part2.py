"""The lab's Embeddings, Errors and Learn tabs driven through gradio_client against the in-process app, bad
inputs included: each must get one clear message beside its control, the last result kept, while the app keeps
serving."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from lab_helpers import drawn, free_port, refusal, write_checkpoint  # noqa: E402

from app.display import display_factor  # noqa: E402
from app.main import launch  # noqa: E402
from contextrast.cli import main as cli_main  # noqa: E402
from contextrast.data.toy import TOY  # noqa: E402

SAMPLE = "toy/val_00000"
SPEC = "toy:n=4,size=64x80"
LAYER = "E2 (1/8)"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab2")
    write_checkpoint(root / "checkpoints" / "toy-a")
    write_checkpoint(root / "checkpoints" / "toy-b", align="bilinear", context="ppm")
    args = argparse.Namespace(checkpoint=[], checkpoints_dir=str(root / "checkpoints"), data=None, port=free_port(),
                              host="127.0.0.1", auth=None, insecure=False, max_file_size="1mb", max_side=256,
                              runs_dir=str(root / "runs"), no_worker=True)
    demo = launch(args, prevent_thread_lock=True)
    client = Client(f"http://127.0.0.1:{args.port}/", verbose=False)
    yield demo, client, root
    demo.close()


def call(client: Client, api: str, *args):
    """A view's outputs (its tab and input messages checked empty)."""
    return drawn(client.predict(*args, api_name=api))


def refused(client: Client, api: str, *args) -> str:
    """The one message of a refused request (every output checked to stay as it was)."""
    return refusal(client.predict(*args, api_name=api))


def plot_array(value) -> np.ndarray:
    """A plotly array from a figure's JSON: a list, or plotly's typed-array encoding {dtype, bdata, shape}."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        shape = [int(s) for s in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value)


CLASSES = list(TOY.classes)


def embeddings_args(n=300, source="this image", count=1, colour="ground truth", second="(none)", layer=LAYER,
                    shown=None):
    return ("toy-a", SAMPLE, None, None, layer, n, 0, source, count, colour, second, shown or CLASSES)


def test_new_endpoints_are_listed_and_heavy_ones_limited(lab):
    demo, client, _ = lab
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    wanted = {"/embeddings", "/embeddings_point", "/embeddings_pixel", "/errors_image", "/errors_split",
              "/errors_cancel", "/errors_confusion", "/learn"}
    assert wanted <= set(endpoints)
    heavy = {fn.api_name: fn for fn in demo.fns.values() if fn.concurrency_id == "model"}
    assert {"embeddings", "errors_image", "errors_split", "learn"} <= set(heavy)
    assert demo.umap_warm_up is not None and demo.umap_warm_up.daemon


# ------------------------------------------------------------------------------------------------ embeddings


def test_embeddings_point_to_pixel_and_back_through_the_app(lab):
    demo, client, _ = lab
    out = call(client, "/embeddings", *embeddings_args(n=200, second="toy-b"))
    info, pic_a, pic_b, located, point, image, y, x = out
    assert "UMAP" in info and Path(pic_a).is_file() and pic_b is not None
    assert (point, image) == (0, 0) and located is not None
    # a chosen point → its pixel, and that pixel → the same point
    _, _, _, _, p, i, py, px = call(client, "/embeddings_point", "ground truth", 17, CLASSES)
    assert p == 17 and i == 0
    _, _, _, _, p2, i2, py2, px2 = call(client, "/embeddings_pixel", "ground truth", i, py, px, CLASSES)
    assert (p2, i2, py2, px2) == (17, 0, py, px)
    # the pixel's label is the point's ground truth (read from the server-side view of this session)
    view = next(v for v in demo.tabs["embeddings"]["cache"]._items.values() if hasattr(v, "samples"))
    from contextrast.data import build_dataset

    mask = build_dataset("toy", "val").load(0)[1]
    assert view.samples[0].truth[17] == mask[int(py), int(px)]
    assert (view.samples[0].gy == view.samples[1].gy).all()  # two checkpoints, the same pixels


def test_clicks_on_the_scatter_picture_and_on_the_image(lab):
    from gradio import helpers
    from gradio.events import SelectData

    demo, client, _ = lab
    tab = demo.tabs["embeddings"]
    fns = {fn.api_name: fn for fn in demo.fns.values()}
    gen = fns["embeddings"].fn(*embeddings_args(n=150, layer=1))  # called directly: the Radio gives an index
    *_, last = list(gen)
    view = last[8]
    sample, proj = view.samples[0], view.projections[0]
    from contextrast.analysis import embeddings as emb

    _, canvas = emb.scatter_image(sample, proj, "ground truth", view.palette)
    k = int(np.argmax(canvas.pixels[:, 0]))  # the right-most dot: nothing overlaps it from the right
    u, v = canvas.pixels[k]
    args, *_ = helpers.special_args(fns["embeddings_click_scatter"].fn, [view, "ground truth", "pick a dot", CLASSES],
                                    None, SelectData(None, {"index": [float(u), float(v)], "value": None}))
    out = fns["embeddings_click_scatter"].fn(*args)
    assert np.allclose(canvas.pixels[out[4]], canvas.pixels[k])
    picked, image, y, x = out[4], out[5], out[6], out[7]
    k = display_factor(view.rgbs[image].shape)  # the located picture is shown enlarged k× (app.display)
    assert out[3].shape[:2] == (k * view.rgbs[image].shape[0], k * view.rgbs[image].shape[1])
    args, *_ = helpers.special_args(fns["embeddings_click_image"].fn, [view, "ground truth", image, CLASSES], None,
                                    SelectData(None, {"index": [k * x + k - 1, k * y], "value": None}))
    back = fns["embeddings_click_image"].fn(*args)
    assert back[4] == picked and (back[6], back[7]) == (y, x) and "→ point" in back[0]
    # a click on empty space is one message: the pictures, the pixel and the point fields stay as they were
    args, *_ = helpers.special_args(fns["embeddings_click_scatter"].fn, [view, "ground truth", "pick a dot", CLASSES],
                                    None, SelectData(None, {"index": [1.0, 1.0], "value": None}))
    missed = fns["embeddings_click_scatter"].fn(*args)
    assert all(isinstance(v, dict) and v.get("__type__") == "update" for v in missed[:9])
    assert "no dot" in missed[9] and missed[10] != "" and tab["cache"] is not None
    # a box of two clicks selects the dots inside it and lights their pixels up
    (u0, v0), (u1, v1) = canvas.pixels[np.isfinite(canvas.pixels[:, 0])].min(0), canvas.pixels.max(0)
    state = view
    for corner in ((u0 - 2, v0 - 2), (u1 + 2, v1 + 2)):
        args, *_ = helpers.special_args(fns["embeddings_click_scatter"].fn, [state, "ground truth", "box: click two "
                                        "corners", CLASSES], None, SelectData(None, {"index": list(corner),
                                                                                      "value": None}))
        boxed = fns["embeddings_click_scatter"].fn(*args)
        state = boxed[8]
    assert state.selection is not None and len(state.selection) > 1 and "Box selection" in boxed[0]
    # a lasso of four corners around every dot, closed on its first corner, selects what the box did
    def click(state, mode, u, v):
        args, *_ = helpers.special_args(fns["embeddings_click_scatter"].fn, [state, "ground truth", mode, CLASSES],
                                        None, SelectData(None, {"index": [float(u), float(v)], "value": None}))
        return fns["embeddings_click_scatter"].fn(*args)

    lasso, boxed_selection = "lasso: click around, end on the first corner", state.selection
    corners = [(u0 - 3, v0 - 3), (u1 + 3, v0 - 3), (u1 + 3, v1 + 3), (u0 - 3, v1 + 3)]
    for n, (u, v) in enumerate(corners, start=1):
        out = click(state, lasso, u, v)
        state = out[8]
        assert len(state.corners) == n and f"corner {n}" in out[0] and out[1].shape == (*canvas.size, 3)
    out = click(state, lasso, corners[0][0] + 2, corners[0][1] + 2)  # near the first corner: closes it
    state = out[8]
    assert state.corners == () and "Lasso selection" in out[0]
    assert np.array_equal(state.selection, boxed_selection)


def test_a_new_image_or_model_redraws_the_views_and_clears_an_outdated_projection(lab):
    """Picking another sample, uploading, or switching model (after the model's menus) tells the Embeddings tab,
    which clears a projection of the old input, and redraws the image views (each only when in view)."""
    demo, _, _ = lab
    by_id = {fn._id: fn for fn in demo.fns.values()}
    for name in ("sample", "upload", "label", "model"):
        stale = next(fn for fn in demo.fns.values() if fn.api_name == f"input_watcher_0_{name}")
        root = stale
        while root.trigger_after is not None:
            root = by_id[root.trigger_after]
        assert root.api_name in {"use_upload", "use_label", "model_menus"} if root is not stale else name == "sample"
        view = next(fn for fn in demo.fns.values() if fn.api_name == f"view_{name}")
        assert view.trigger_after == stale.trigger_after and view.targets == stale.targets  # one trigger for both
        outputs = set(map(id, view.outputs))
        assert all(id(o) in outputs for p in demo.lab.pages if p.view for o in p.view["outputs"])
    client = Client(demo.local_url, verbose=False)  # a session of its own: the one it clears is not shared
    call(client, "/embeddings", *embeddings_args(n=200))
    info, pic_a, pic_b, *_ = client.predict("this image", "toy-a", api_name="/input_watcher_0_sample")
    assert "press **Project embeddings**" in info and pic_a is None and hidden(pic_b)
    # the cleared session state: clicks now ask for a projection instead of mapping stale points
    assert "Project" in refused(client, "/embeddings_point", "ground truth", 3, CLASSES)


def test_embeddings_bad_inputs(lab):
    _, client, root = lab
    for n in (0, 10**7):  # the slider's own bounds (the page cannot send these)
        with pytest.raises(AppError, match="(?i)minimum|maximum|sample size"):
            client.predict(*embeddings_args(n=n), api_name="/embeddings")
    with pytest.raises(AppError, match="not in the list of choices|layer"):
        client.predict(*embeddings_args(layer="E9 (1/512)"), api_name="/embeddings")
    assert "project the embeddings first" in refusal(Client(client.src, verbose=False).predict(
        "ground truth", 3, CLASSES, api_name="/embeddings_point"))
    assert "point must be" in refused(client, "/embeddings_point", "ground truth", 10**6, CLASSES)
    # an upload without labels: balanced by prediction, coloured by prediction, with a notice
    rgb = np.asarray(Image.open(client.predict(SAMPLE, api_name="/load_sample")))[..., :3]
    Image.fromarray(rgb).save(root / "nolabel.png")
    out = call(client, "/embeddings", "toy-a", "(your upload)", handle_file(str(root / "nolabel.png")), None, LAYER,
               150, 0, "this image", 1, "ground truth", "(none)", CLASSES)
    assert "coloured by prediction" in out[0]


# ------------------------------------------------------------------------------------------------ errors


def hidden(value) -> bool:
    """An output the handler emptied and hid (the client reports a hidden component as an update dict)."""
    return value is None or (isinstance(value, dict) and value.get("visible") is False and value.get("value") is None)


def shown(value):
    """The value of an output the handler filled and made visible (the client reports it as an update dict)."""
    assert isinstance(value, dict) and value.get("visible") is True, value
    return value["value"]


def test_errors_image_with_class_filter_and_comparison(lab):
    _, client, _ = lab
    outcome, versus, plot, info = call(client, "/errors_image", "toy-a", SAMPLE, None, None, "disc", True, "(none)")
    assert Path(outcome).is_file() and hidden(versus) and hidden(plot) and "false positive" in info
    outcome, versus, plot, info = call(client, "/errors_image", "toy-a", SAMPLE, None, None, "all classes", False,
                                       "toy-b")
    assert Path(shown(versus)).is_file() and shown(plot) is not None and "fixes" in info and "breaks" in info


def test_errors_image_without_labels_is_a_clear_message(lab):
    _, client, root = lab
    rgb = np.zeros((64, 80, 3), np.uint8)
    Image.fromarray(rgb).save(root / "blank.png")
    outcome, versus, plot, info = call(client, "/errors_image", "toy-a", "(your upload)",
                                       handle_file(str(root / "blank.png")), None, "all classes", False, "(none)")
    assert outcome is None and hidden(versus) and "needs a ground truth" in info
    assert call(client, "/errors_image", "toy-a", SAMPLE, None, None, "all classes", False, "(none)")[0]


def test_split_metrics_equal_contextrast_eval(lab):
    demo, client, root = lab
    out_json = root / "eval.json"
    assert cli_main(["eval", "--checkpoint", str(root / "checkpoints" / "toy-a"), "--data", SPEC, "--split", "val",
                     "--json", str(out_json), "--no-progress"]) == 0
    cli = json.loads(out_json.read_text())
    confusion, ious, table, metrics, info = call(client, "/errors_split", "toy-a", SPEC, "val", 0, "(none)", False)
    assert metrics["confusion"] == cli["confusion"]
    assert metrics["per_class_iou"] == pytest.approx(cli["per_class_iou"])
    assert metrics["boundary_iou"] == pytest.approx(cli["boundary_iou"])
    z = json.loads(confusion["plot"])["data"][0]["z"]
    assert np.array_equal(plot_array(z), np.asarray(cli["confusion"]))  # the figure shows those counts
    table = table.get("value", table)  # the handler sets the headers too: an update of the Dataframe
    rows = {r[0]: r[1] for r in table["data"]}
    for c, v in cli["per_class_iou"].items():
        assert (rows[c] is None and v is None) or rows[c] == pytest.approx(round(100 * v, 2))
    normalised, = call(client, "/errors_confusion", metrics, True)
    zn = plot_array(json.loads(normalised["plot"])["data"][0]["z"])
    assert np.allclose(zn.sum(1)[np.asarray(cli["confusion"]).sum(1) > 0], 1.0)
    # cached: the second call does not evaluate again
    runs = len(demo.tabs["errors"].history)
    assert "(cached)" in call(client, "/errors_split", "toy-a", SPEC, "val", 0, "(none)", False)[-1]
    assert len(demo.tabs["errors"].history) == runs


def test_split_comparison_counts_add_up(lab):
    _, client, _ = lab
    _, ious, table, metrics, info = call(client, "/errors_split", "toy-a", SPEC, "val", 2, "toy-b", False)
    import re

    labelled = int(re.search(r"Over (\d+) labelled pixels", info).group(1))
    fixed = int(re.search(r"fixes (\d+)", info).group(1))
    broken = int(re.search(r"breaks (\d+)", info).group(1))
    right = int(re.search(r"both right (\d+)", info).group(1))
    wrong = int(re.search(r"both wrong (\d+)", info).group(1))
    assert fixed + broken + right + wrong == labelled == int(np.asarray(metrics["confusion"]).sum())
    # B's own per-class IoU beside A's, and the difference, in the table and the chart
    metrics_b = call(client, "/errors_split", "toy-b", SPEC, "val", 2, "(none)", False)[3]
    table = table.get("value", table)
    assert table["headers"][-2:] == ["IoU % of toy-b", "Δ IoU (toy-b − A)"]
    for row in table["data"]:
        a, b = metrics["per_class_iou"][row[0]], metrics_b["per_class_iou"][row[0]]
        assert row[-2] == (None if b is None else pytest.approx(round(100 * b, 2)))
        assert row[-1] == (None if a is None or b is None else pytest.approx(round(100 * (b - a), 2)))
    assert len(json.loads(ious["plot"])["data"]) >= 2  # bars of A and of B
    assert f"{100 * metrics_b['miou']:.2f} %" in info


def test_split_bad_inputs(lab):
    _, client, _ = lab
    first = call(client, "/errors_split", "toy-a", SPEC, "val", 0, "(none)", False)
    assert re.search("unknown dataset|toy|spec", refused(client, "/errors_split", "toy-a", "nonsense-data", "val", 0,
                                                         "(none)", False))
    # a folder that does not exist: one message; the confusion matrix, chart, table and JSON stay on screen
    message = refused(client, "/errors_split", "toy-a", "camvid:/nonexistent", "val", 0, "(none)", False)
    assert "nonexistent" in message or "not" in message
    assert "max images" in refused(client, "/errors_split", "toy-a", SPEC, "val", -1, "(none)", False)
    with pytest.raises(AppError, match="not in the list of choices|split must be"):
        client.predict("toy-a", SPEC, "holdout", 0, "(none)", False, api_name="/errors_split")
    assert first[3]["confusion"]


def test_split_evaluation_can_be_cancelled(lab):
    demo, client, _ = lab
    tab = demo.tabs["errors"]
    job = client.submit("toy-a", "toy:n=400,size=64x80", "val", 0, "(none)", False, api_name="/errors_split")
    deadline = time.time() + 60
    while time.time() < deadline and not any(h["key"][1] == "toy:n=400,size=64x80" for h in tab.history):
        status = job.status()
        if status.progress_data:  # the evaluation is running and reports progress: cancel it now
            break
        time.sleep(0.2)
    assert client.predict(api_name="/errors_cancel").startswith("Cancelling")
    deadline = time.time() + 60
    while time.time() < deadline and not any(h["key"][1] == "toy:n=400,size=64x80" for h in tab.history):
        time.sleep(0.2)
    run = next(h for h in tab.history if h["key"][1] == "toy:n=400,size=64x80")
    assert run["cancelled"] and run["images"] < 400
    assert tab.cache.get(run["key"]) is None  # a cancelled result is never cached
    assert call(client, "/errors_image", "toy-a", SAMPLE, None, None, "all classes", False, "(none)")[0]


# ------------------------------------------------------------------------------------------------ learn


def test_learn_walk_through_and_sliders_change_the_loss(lab):
    _, client, _ = lab
    out = call(client, "/learn", "(small untrained model)", 0, LAYER, 0.1, 50, 0.5)
    pictures, texts, loss = out[:6], out[6:12], out[12]
    assert all(p is not None for p in pictures) and all(len(t) > 80 for t in texts)
    assert loss["chosen"]["ccl"] == pytest.approx(loss["model's own"]["ccl"])
    # the loss terms are shown to 4 significant digits, not 16
    assert all(len(repr(v).replace("-", "").replace(".", "").lstrip("0")) <= 6 for v in loss["chosen"].values()
               if isinstance(v, float))
    out2 = call(client, "/learn", "(small untrained model)", 0, LAYER, 0.05, 20, 0.9)
    assert out2[12]["chosen"]["ccl"] != pytest.approx(out2[12]["model's own"]["ccl"])
    assert "L_CCL" in out2[11]
    with pytest.raises(AppError, match="not in the list of choices|model must be"):
        client.predict("no-such-model", 0, LAYER, 0.1, 50, 0.5, api_name="/learn")
    with pytest.raises(AppError, match="(?i)minimum|maximum|τ"):
        client.predict("(small untrained model)", 0, LAYER, 0.0, 50, 0.5, api_name="/learn")


def test_opening_the_learn_tab_draws_the_walk_through_once(lab):
    demo, _, _ = lab
    fn = next(f for f in demo.fns.values() if f.api_name == "learn_first_visit")
    learn_tab = next(b for b in demo.blocks.values() if isinstance(b, gr.Tab) and b.label == "Learn")
    assert (learn_tab._id, "select") in [(t[0], t[1]) for t in fn.targets]  # fired by opening the tab
    out = fn.fn(False, "(small untrained model)", 0, 1, 0.1, 50, 0.5)  # the Radio passes an index
    assert out[-3] is True and all(p is not None for p in out[:6]) and "ccl" in out[12]["chosen"]
    again = fn.fn(True, "(small untrained model)", 0, 1, 0.1, 50, 0.5)
    assert len(again) == len(out) and all(isinstance(x, dict) and x.get("__type__") == "update"
                                          for x in again[:-3])
