"""`contextrast app`: the Contextrast Lab. `build_ui(checkpoints, data_spec)` lays out the page;
`launch(args)` serves it. Every view is a function in `contextrast.analysis`; this package only wires: each tab
registers its own events on the lab (`app.lab.Lab`), and `wire_inputs` connects the shared inputs to them."""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from app import gallery, output_files
from app.access import LoginFirst, check_host, resolve_auth
from app.display import ImageInput
from app.first_page import FirstPage, app_checkpoints, check_max_side, prepare_first_page, use_cores
from app.lab import PAGE_EVENT, Lab, message_box, set_message_filter
from app.samples import UPLOAD
from app.tabs.bane import build_bane
from app.tabs.crm import build_crm
from app.tabs.embeddings import build_embeddings
from app.tabs.errors import build_errors
from app.tabs.images import build_images
from app.tabs.intervene import build_intervene
from app.tabs.learn import build_learn
from app.tabs.predict import build_predict
from app.tabs.srm import build_srm
from app.tabs.train import build_train
from contextrast.analysis import embeddings
from contextrast.paths import PathPolicy

log = logging.getLogger("contextrast.app")

FIRST_VIEW_S = 30.0  # the UMAP warm-up waits this long for a browser's first page (app.main.warm_up_in_background)
QUIET_S = 2.0  # … and then for this long without a view request (started or finished)
MAX_QUIET_WAIT_S = 60.0  # … but no longer than this
DELETE_CACHE = (900, 3600)  # every 15 min, Gradio deletes this app's uploads and outputs older than an hour

HEADER = """# Contextrast Lab
Look inside a segmentation network: **SCRNet** (learned upsampling offsets in the SRM, context attention in the
CRM) trained with **Contextrast** (contrastive learning with boundary-aware hard negatives, BANE).
Pick a sample or upload an image, then browse the tabs; everything is computed on this machine's CPU."""
CSS = """.lab-message p { color: #b45309; font-weight: 600; margin: 2px 0; }
.lab-try p { opacity: .85; margin: 0 0 6px 0; }"""
# Enter in a slider's number box applies the value, as leaving the box does (Gradio applies it on blur only)
JS = """() => { document.addEventListener('keydown', (e) => {
  const box = e.target;
  if (e.key === 'Enter' && box instanceof HTMLInputElement && box.type === 'number'
      && (box.getAttribute('aria-label') || '').startsWith('number input for')) { box.blur(); }
}); }"""
# launch() keyword arguments of the page's look and behaviour. No run history: Gradio would record every event
# of the lab's chains (a new sample fires a dozen) in the browser's localStorage, re-serialising the whole
# history on each one; measured in headless Chromium that was most of the 8-15 s a new sample took.
PAGE = dict(css=CSS, js=JS, run_history=False)


def build_ui(checkpoints: Sequence[str | Path], data_spec: str | None = None, *, max_side: int = 2048,
             toy_spec: str | None = "toy", concurrency: int = 1, warm_up_umap: bool = True,
             runs_dir: str | Path | None = None, paths: PathPolicy | None = None,
             first_page: FirstPage | None = None) -> gr.Blocks:
    """The app's Blocks for these checkpoint directories (none is allowed: the page says so) and an
    optional dataset spec whose first available split (val, test, train) is listed before the toy samples, so
    the page opens on it.
    With `runs_dir`, a Train tab submits fine-tuning jobs to the worker queue kept there.
    `paths`: the folders a client may name (dataset specs, base checkpoints); by default the dataset
    spec's folder, the checkpoint directories and the runs dir.
    `first_page`: the head start `app.first_page.prepare_first_page` gave for the same checkpoints and data (started
    before Gradio was imported); by default it is started here."""
    if paths is None:
        paths = default_paths(checkpoints, data_spec, runs_dir)
    set_message_filter(paths.redact)
    if first_page is None:
        first_page = prepare_first_page(checkpoints, data_spec, toy_spec, max_side)
    store, samples = first_page.store, first_page.samples
    lab = Lab(store=store, samples=samples, max_side=max_side, concurrency=concurrency, paths=paths)
    names = store.names()
    sample_names = samples.names()
    first_sample, first_rgb = first_page.sample, first_page.rgb
    lab.default_model = first_page.model
    notes = list(store.problems)
    if not names:
        notes.append("No model found: put checkpoint directories (model.safetensors + model_card.json) in "
                     "`checkpoints/`, or start with `contextrast app --checkpoint DIR`. Train a small one with "
                     "`contextrast train --set train.data=toy`.")

    # no telemetry: Gradio would otherwise check PyPI for a newer version and report usage from two threads at
    # every start (a lab may run offline; those threads took 0.4 s of CPU while the page was being served)
    with gr.Blocks(title="Contextrast Lab", delete_cache=DELETE_CACHE, analytics_enabled=False) as demo:
        # first, while the page is empty: queue() rebuilds Gradio's server app from the page so far (0.1 s
        # for the whole page); an event's "default" concurrency limit is read when it runs, not when registered
        demo.queue(default_concurrency_limit=1, max_size=64)
        gr.Markdown(HEADER)
        gr.Markdown("\n".join(f"> ⚠️ {n}" for n in notes), visible=bool(notes))
        with gr.Row():
            with gr.Column(scale=1):
                model = gr.Dropdown(names, value=lab.default_model, label="Model")
                sample = gr.Dropdown([UPLOAD, *sample_names], value=first_sample, label="Sample",
                                     info="Type to filter, or pick a thumbnail below; choose your upload to analyse "
                                          "your own image.")
                label = gr.File(label="Label map for your upload (optional): PNG of class ids", type="filepath",
                                file_types=[".png"])
                with gr.Row():
                    go = gr.Button("Analyse", variant="primary")
                    keep_scale = gr.Checkbox(False, label="Keep colour scales",
                                             info="compare maps across images, layers and models on one scale")
                input_message = message_box()
            with gr.Column(scale=2):
                image = ImageInput(first_rgb, type="filepath", image_mode=None, label="Image (drop your own here)",
                                   sources=["upload", "clipboard"], height=300, format="png")
        lab.components.update(model=model, sample=sample, image=image, label=label, input_message=input_message,
                              keep_scale=keep_scale, current_tab=gr.State("Predict"))
        thumbnails = gallery.build_gallery(lab)
        with gr.Tabs():
            build_predict(lab)
            build_srm(lab)
            build_crm(lab)
            build_bane(lab)
            build_intervene(lab)
            embeddings_tab = build_embeddings(lab)
            errors_tab = build_errors(lab, data_spec)
            opened = thumbnails + build_images(lab)
            learn_tab = build_learn(lab)
            train_tab = build_train(lab, runs_dir) if runs_dir is not None else None
        wire_inputs(demo, lab, go, opened)
    demo.lab = lab  # for tests and benchmarks: the server state behind the page
    demo.tabs = dict(embeddings=embeddings_tab, errors=errors_tab, learn=learn_tab, train=train_tab)
    # in the background, once the first page is drawn: UMAP's numba kernels (no user's first projection pays for
    # them); the first page itself is prepared by `first_page`'s thread
    demo.umap_warm_up = warm_up_in_background(lab) if warm_up_umap else None
    return demo


def warm_up_in_background(lab: Lab, first_view_s: float = FIRST_VIEW_S, quiet_s: float = QUIET_S
                          ) -> threading.Thread:
    """A daemon thread that compiles UMAP's kernels once the first page has been drawn: after the first view request
    (or `first_view_s` without one) and `quiet_s` without another. The compile is half a minute of a core and of the
    interpreter's lock; started at once, it slowed the first page by a third on 2 cores."""

    def warm_up() -> None:
        start = time.monotonic()
        while lab.last_view is None and time.monotonic() - start < first_view_s:
            time.sleep(0.1)
        # a lab in constant use (views less than `quiet_s` apart) gets the compile after `first_view_s` + 60 s
        while (lab.last_view is not None and time.monotonic() - lab.last_view < quiet_s
               and time.monotonic() - start < first_view_s + MAX_QUIET_WAIT_S):
            time.sleep(0.1)
        embeddings.warm_up_umap()

    thread = threading.Thread(target=warm_up, name="lab-warm-up", daemon=True)
    thread.start()
    return thread


def wire_inputs(demo: gr.Blocks, lab: Lab, go: gr.Button, opened: Sequence[Any]) -> None:
    """Connect the shared inputs to what the tabs registered: a new sample, upload, label map or model first
    updates the model's menus, then tells the watchers and redraws the tab in view (`Lab.view_event`). `opened`:
    events of other pickers (thumbnails, the image browser) that set the sample."""
    c = lab.components
    samples = lab.samples
    view = lab.view_event()

    def load_sample(sample_name: str | None):
        """Show the picked sample in the image box (an upload stays as it is)."""
        if not sample_name or sample_name == UPLOAD or sample_name not in samples:
            return gr.skip()
        return samples.load(sample_name)[0]

    def redraw(trigger: Any, source: str) -> None:
        if view is not None:
            trigger(**view, api_name=f"view_{source}", **lab.model_event(**PAGE_EVENT))

    def follow(trigger: Any, source: str) -> None:
        """The watchers and the view of a new input; `trigger` registers an event: `.then` of the event that set
        the input, or the input's own event."""
        for i, watcher in enumerate(lab.input_watchers):
            trigger(**watcher, api_name=f"input_watcher_{i}_{source}", concurrency_limit=4, **PAGE_EVENT)
        redraw(trigger, source)

    use_upload = lambda: UPLOAD  # noqa: E731
    c["sample"].input(load_sample, c["sample"], c["image"], api_name="load_sample", concurrency_limit=4)
    # the views read a listed sample by its name, not from the image box: they start with the box's update
    follow(c["sample"].input, "sample")
    quick = dict(concurrency_limit=4, **PAGE_EVENT)
    follow(c["image"].upload(use_upload, None, c["sample"], api_name="use_upload", **quick).then, "upload")
    follow(c["label"].upload(use_upload, None, c["sample"], api_name="use_label", **quick).then, "label")
    follow(c["label"].clear(lambda: gr.skip(), None, c["sample"], api_name="clear_label", **quick).then,
           "label_cleared")
    menus = lab.model_menus_event()  # the views read the class pickers: they redraw after the menus' update
    follow(c["model"].input(**menus, api_name="model_menus", **quick).then if menus else c["model"].input, "model")
    for i, event in enumerate(opened):
        follow(event.then, f"opened_{i}")
    redraw(go.click, "button")
    redraw(c["keep_scale"].input, "scale")
    for i, load in enumerate(lab.page_load_events()):
        demo.load(**load, api_name=f"page_load_{i}", **quick)
    # no view on the page's load event: Gradio fires the first tab's select event when the tabs appear, which draws
    # it (`predict_view_shown`); a load-time view drew the first page a second time, 0.7 s of 2 cores


def default_paths(checkpoints: Sequence[str | Path], data_spec: str | None, runs_dir: str | Path | None,
                  data_roots: Sequence[str] = (), checkpoint_roots: Sequence[str | Path] = ()) -> PathPolicy:
    """The allow-list of a lab: the --data spec's folder and every --data-root; the checkpoint
    directories it loads, their folders and every extra root, and the runs dir's jobs."""
    from contextrast.data.build import parse_spec

    data = [*data_roots]
    if data_spec and parse_spec(data_spec).root:
        data.append(parse_spec(data_spec).root)
    ckpts = [*checkpoint_roots, *checkpoints]
    if runs_dir is not None:
        ckpts.append(Path(runs_dir) / "jobs")
    return PathPolicy(data, ckpts)


def launch(args: argparse.Namespace, prevent_thread_lock: bool = False, first_page: FirstPage | None = None
           ) -> gr.Blocks:
    """Serve the lab as `contextrast app` was asked to; returns the running Blocks. `first_page`: the head start
    `contextrast app` gave before importing Gradio (`app.first_page.start`), else it is started here."""
    auth = resolve_auth(args.auth, getattr(args, "auth_file", None))
    check_host(args.host, auth, args.insecure)
    check_max_side(args.max_side)
    use_cores()
    checkpoints = first_page.checkpoints if first_page else app_checkpoints(args)
    runs_dir = args.runs_dir
    if not args.no_worker:
        from contextrast.jobs import ensure_worker_running

        try:
            if ensure_worker_running(runs_dir, exit_with_parent=True) is not None:
                print(f"started a fine-tuning worker in the background (log: {Path(runs_dir) / 'worker.log'})",
                      flush=True)
        except ValueError as e:
            print(f"warning: no fine-tuning worker: {e}", flush=True)
    paths = default_paths(checkpoints, args.data, runs_dir, getattr(args, "data_root", None) or [],
                          [args.checkpoints_dir] if args.checkpoints_dir else [])
    demo = build_ui(checkpoints, args.data, max_side=args.max_side, runs_dir=runs_dir, paths=paths,
                    first_page=first_page)
    output_files.install()  # concurrent downloads of one picture never see it half written
    # quiet: Gradio's own banner speaks of `share=True`, which a command-line user of the lab has no use for
    demo.launch(server_name=args.host, server_port=args.port, auth=auth, max_file_size=args.max_file_size,
                prevent_thread_lock=True, show_error=True, quiet=True, footer_links=["api"],
                app_kwargs={"middleware": [Middleware(LoginFirst)]}, **PAGE)
    print(f"Contextrast Lab: {demo.local_url}", flush=True)
    if not prevent_thread_lock:
        demo.block_thread()
    return demo
