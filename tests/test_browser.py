"""The lab in a real browser: headless Chromium (driven by Playwright, `benchmarks.lab_page.LabPage`) walks every
tab on a CamVid sample (the toy sample when CamVid is absent: $CAMVID, else ../shared/data/camvid) and then on an uploaded image
with its label map, clicks what each tab invites, and fails on any "Error" badge, toast or lab message.

Screenshots of every tab go to the test's temporary folder, or to $LAB_BROWSER_SHOTS when it is set. Skips when
Playwright or chromium is missing."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
from data_paths import CAMVID
from lab_helpers import free_port
from PIL import Image

pytest.importorskip("playwright.sync_api")
from benchmarks.lab_page import MESSAGES_JS, LabPage, browser, chromium  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HAS_CAMVID = (CAMVID / "val").is_dir() and (CAMVID / "valannot").is_dir()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(chromium() is None, reason="chromium is not installed")]
WAIT_S = 240.0  # a forward pass of the CamVid models on a busy 2-core machine takes seconds


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from app.main import launch

    root = tmp_path_factory.mktemp("browser")
    shots = Path(os.environ.get("LAB_BROWSER_SHOTS") or root / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    args = argparse.Namespace(checkpoint=[], checkpoints_dir=str(ROOT / "checkpoints"),
                              data=f"camvid:{CAMVID}" if HAS_CAMVID else None, port=free_port(), host="127.0.0.1",
                              auth=None, insecure=False, max_file_size="20mb", max_side=1024,
                              runs_dir=str(root / "runs"), no_worker=True)
    demo = launch(args, prevent_thread_lock=True)
    try:
        with browser(window=(1400, 1200)) as page:
            page.open(demo.local_url, WAIT_S)
            yield demo, page, root, shots
    finally:
        demo.close()


def settled(page: LabPage, where: str) -> None:
    """Wait until nothing is pending, then fail on anything that says something went wrong."""
    page.wait_idle(WAIT_S)
    page.page.wait_for_timeout(300)  # a message or toast arrives with the event's last output
    problems = page.problems()
    assert not problems, f"{where}: {problems}"


def walk_tabs(page: LabPage, shots: Path, prefix: str, upload: bool) -> None:
    """Every tab on the current input: open it, check its view, click what it invites."""
    page.tab("Predict")
    page.wait_text("predict-info", "forward pass", WAIT_S)
    settled(page, "Predict")
    before = page.picture("predict-overlay")
    page.page.locator("#predict-classes label").first.click()  # hide a class
    page.wait_picture_change("predict-overlay", before, WAIT_S)
    settled(page, "Predict, a class hidden")
    page.shot(shots / f"{prefix}-predict.png")

    page.tab("SRM offsets")
    page.wait_text("srm-info", "Step", WAIT_S)
    page.choose("1/16 → 1/8")
    page.wait_text("srm-info", "1/16 → 1/8", WAIT_S)
    settled(page, "SRM")
    page.shot(shots / f"{prefix}-srm.png")

    page.tab("CRM attention")
    page.wait_text("crm-info", "Query pixel", WAIT_S)
    settled(page, "CRM")
    query = page.text("crm-info").split("→")[0]
    page.click_picture("crm-overlay", 0.25, 0.3)
    page.page.wait_for_function("q => !(document.getElementById('crm-info')?.innerText || '').startsWith(q)",
                                arg=query, timeout=WAIT_S * 1000, polling=100)
    settled(page, "CRM, a query pixel clicked")
    page.shot(shots / f"{prefix}-crm.png")

    page.tab("BANE")
    page.wait_text("bane-info", "sampled", WAIT_S)
    page.type_number("bane-ks", 30)  # typed, then Enter: applied at once
    page.wait_text("bane-info", "K_s = 30", WAIT_S)
    settled(page, "BANE")
    page.shot(shots / f"{prefix}-bane.png")

    page.tab("Intervene")
    page.page.wait_for_function("() => (document.getElementById('intervene-info')?.innerText || '').length > 20",
                                timeout=WAIT_S * 1000, polling=100)
    settled(page, "Intervene")
    page.shot(shots / f"{prefix}-intervene.png")

    page.tab("Embeddings")
    page.type_number("embeddings-points", 500)
    page.click_button("Project embeddings")
    page.wait_text("embeddings-info", "UMAP ·", WAIT_S)
    settled(page, "Embeddings")
    page.click_picture("embeddings-scatter", 0.5, 0.5)  # near a dot or on empty space: either is no error
    page.wait_idle(WAIT_S)
    messages = page.messages()
    assert all("no dot" in m for m in messages), messages
    assert page.error_badges() == 0 and not page.toasts()
    # a dot hit names its point; a miss is one message and keeps the projection on screen
    assert ("UMAP" if messages else "Clicked the scatter") in page.text("embeddings-info")
    if not upload:  # a lasso around the whole scatter, closed on its first corner, lights its pixels up
        page.choose("lasso: click around, end on the first corner")
        for fx, fy in ((0.06, 0.08), (0.94, 0.08), (0.94, 0.96), (0.06, 0.96), (0.062, 0.082)):
            page.click_picture("embeddings-scatter", fx, fy)
            page.wait_idle(WAIT_S)
        page.wait_text("embeddings-info", "Lasso selection", WAIT_S)
        settled(page, "Embeddings, a lasso")
        page.choose("pick a dot")  # the upload's pass clicks a dot again
    page.shot(shots / f"{prefix}-embeddings.png")

    page.tab("Errors")
    page.wait_text("errors-info", "pixels", WAIT_S)
    settled(page, "Errors, this image")
    if not upload:
        page.page.locator("#errors-max input").fill("2")
        page.click_button("Evaluate the split")
        page.wait_text("errors-split-info", "images in", WAIT_S)
        settled(page, "Errors, the split")
    page.shot(shots / f"{prefix}-errors.png")

    if upload:
        return
    page.tab("Images")
    page.page.locator("#images-max input").fill("3")
    page.click_button("Rank the images")
    page.wait_text("images-info", "images shown", WAIT_S)
    settled(page, "Images")
    worst = page.page.locator("#images-table [data-testid=cell-0-1]")
    name = worst.inner_text().strip()
    worst.click()  # opens the worst image in every tab
    menu = page.page.get_by_label("Sample", exact=True)
    page.page.wait_for_function("([e, n]) => e.value === n", arg=[menu.element_handle(timeout=WAIT_S * 1000), name],
                                timeout=WAIT_S * 1000, polling=100)
    settled(page, "Images, a row opened")
    page.shot(shots / f"{prefix}-images.png")

    page.tab("Learn")
    page.wait_text("learn-step-6", "τ", WAIT_S)
    settled(page, "Learn")
    page.type_number("learn-ks", 20)
    page.wait_text("learn-step-5", "20", WAIT_S)
    settled(page, "Learn, K_s typed")
    page.shot(shots / f"{prefix}-learn.png")

    page.tab("Train")
    page.click_button("Start")  # the form's defaults must be accepted
    page.wait_text("train-submitted", "Submitted job", WAIT_S)
    settled(page, "Train")
    page.shot(shots / f"{prefix}-train.png")


def test_every_tab_on_a_sample_then_on_an_upload(lab):
    demo, page, root, shots = lab
    assert page.page.get_by_role("tab").all_inner_texts()[:4] == ["Predict", "SRM offsets", "CRM attention", "BANE"]
    # the first set's thumbnails arrive (after the first prediction: their page load waits for it)
    page.page.wait_for_function("n => document.querySelectorAll('#sample-thumbnails img').length === n",
                                arg=len(demo.lab.samples.thumbnails(None)), timeout=WAIT_S * 1000, polling=100)
    walk_tabs(page, shots, "sample", upload=False)
    # every tab opened once: the tab bar still lists each tab once
    labels = page.page.evaluate("() => [...document.querySelectorAll('[role=tab]')].map(e => e.innerText.trim())")
    assert len(labels) == len(set(labels)) and "Train" in labels, labels

    # an upload with its label map (CamVid's own annotation, void label 11 included, when CamVid is here)
    if HAS_CAMVID:
        name = sorted((CAMVID / "val").glob("*.png"))[-1].name
        image, labels = CAMVID / "val" / name, CAMVID / "valannot" / name
    else:
        from contextrast.data import build_dataset

        rgb, mask = build_dataset("toy", "val").load(3)
        image, labels = root / "upload.png", root / "upload_labels.png"
        Image.fromarray(rgb).save(image)
        Image.fromarray(mask.astype(np.uint8)).save(labels)
    page.tab("Predict")
    page.upload("Image (drop your own here)", image)
    page.wait_text("predict-info", "upload", WAIT_S)
    page.upload("Label map for your upload", labels)
    page.wait_text("predict-info", "Pixel accuracy", WAIT_S)
    settled(page, "Predict, an upload with its label map")
    walk_tabs(page, shots, "upload", upload=True)

    # a file that is not a picture: one clear message under the inputs, the last view kept
    text = root / "notes.png"
    text.write_text("not a picture")
    page.tab("Predict")
    page.upload("Image (drop your own here)", text)
    page.page.wait_for_function(f"() => ({MESSAGES_JS})().length > 0", timeout=WAIT_S * 1000, polling=100)
    page.wait_idle(WAIT_S)
    messages = page.messages()
    assert len(messages) == 1 and "not a readable image" in messages[0], messages
    assert page.error_badges() == 0 and not page.toasts()
    assert "Pixel accuracy" in page.text("predict-info")
    page.shot(shots / "upload-not-a-picture.png")
