"""`contextrast app`: the Contextrast Lab. `build_ui(checkpoints, data_spec)` lays out the page;
`launch(args)` serves it. Every view is a function in `contextrast.analysis`; this package only wires."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from starlette.middleware import Middleware

from app import output_files
from app.access import LoginFirst, check_host, resolve_auth
from app.lab import Lab, set_message_filter, user_errors
from app.samples import UPLOAD, Samples
from app.state import ModelStore, discover_checkpoints
from app.tabs.bane import AUTO, build_bane
from app.tabs.crm import build_crm
from app.tabs.embeddings import build_embeddings
from app.tabs.errors import build_errors
from app.tabs.learn import build_learn
from app.tabs.predict import build_predict
from app.tabs.srm import build_srm
from app.tabs.train import build_train
from contextrast.analysis import embeddings
from contextrast.analysis.image_io import MIN_SIDE
from contextrast.paths import PathPolicy

DELETE_CACHE = (900, 3600)  # every 15 min, Gradio deletes this app's uploads and outputs older than an hour

HEADER = """# Contextrast Lab
Look inside a segmentation network: **SCRNet** (learned upsampling offsets in the SRM, context attention in the
CRM) trained with **Contextrast** (contrastive learning with boundary-aware hard negatives, BANE).
Pick a sample or upload an image, then browse the tabs; everything is computed on this machine's CPU."""


def build_ui(checkpoints: Sequence[str | Path], data_spec: str | None = None, *, max_side: int = 2048,
             toy_spec: str | None = "toy", concurrency: int = 1, warm_up_umap: bool = True,
             runs_dir: str | Path | None = None, paths: PathPolicy | None = None) -> gr.Blocks:
    """The app's Blocks for these checkpoint directories (none is allowed: the page says so) and an
    optional dataset spec whose first available split (val, test, train) is listed before the toy samples, so
    the page opens on it.
    With `runs_dir`, a Train tab submits fine-tuning jobs to the worker queue kept there.
    `paths`: the folders a client may name (dataset specs, base checkpoints); by default the dataset
    spec's folder, the checkpoint directories and the runs dir."""
    if paths is None:
        paths = default_paths(checkpoints, data_spec, runs_dir)
    set_message_filter(paths.redact)
    store = ModelStore([Path(p) for p in checkpoints])
    samples = Samples(data_spec, toy_spec)
    lab = Lab(store=store, samples=samples, max_side=max_side, concurrency=concurrency, paths=paths)
    names = store.names()
    sample_names = samples.names()
    first_sample = sample_names[0] if sample_names else UPLOAD
    first_rgb, _, first_info = samples.load(first_sample) if first_sample != UPLOAD else (None, None, None)
    first_model = lab.default_model = default_model(store, first_info.classes if first_info else None)
    notes = list(store.problems)
    if not names:
        notes.append("No model found: put checkpoint directories (model.safetensors + model_card.json) in "
                     "`checkpoints/`, or start with `contextrast app --checkpoint DIR`. Train a small one with "
                     "`contextrast train --set train.data=toy`.")

    with gr.Blocks(title="Contextrast Lab", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(HEADER)
        gr.Markdown("\n".join(f"> ⚠️ {n}" for n in notes), visible=bool(notes))
        with gr.Row():
            with gr.Column(scale=1):
                model = gr.Dropdown(names, value=first_model, label="Model")
                sample = gr.Dropdown([UPLOAD, *sample_names], value=first_sample, label="Sample",
                                     info="Built-in labelled samples; choose your upload to analyse your own image.")
                label = gr.File(label="Label map for your upload (optional): PNG of class ids", type="filepath",
                                file_types=[".png"])
                go = gr.Button("Analyse", variant="primary")
            with gr.Column(scale=2):
                image = gr.Image(first_rgb, type="filepath", image_mode=None, label="Image (drop your own here)",
                                 sources=["upload", "clipboard"], height=300, format="png")
        lab.components.update(model=model, sample=sample, image=image, label=label)
        with gr.Tabs():
            with gr.Tab("Predict"):
                predict_tab = build_predict(lab)
            with gr.Tab("SRM offsets"):
                srm_tab = build_srm(lab)
            with gr.Tab("CRM attention"):
                crm_tab = build_crm(lab)
            with gr.Tab("BANE"):
                bane_tab = build_bane(lab)
            with gr.Tab("Embeddings"):
                embeddings_tab = build_embeddings(lab)
            with gr.Tab("Errors"):
                errors_tab = build_errors(lab, data_spec)
            with gr.Tab("Learn") as learn_page:
                learn_tab = build_learn(lab)
            learn_page.select(**learn_tab.first_visit)
            if runs_dir is not None:
                with gr.Tab("Train"):
                    build_train(lab, runs_dir)

        outputs = predict_tab.outputs + srm_tab.outputs + crm_tab.outputs + bane_tab.outputs
        controls = predict_tab.controls + srm_tab.controls + crm_tab.controls + bane_tab.controls
        assert [len(t.controls) for t in (predict_tab, srm_tab, crm_tab, bane_tab)] == [2, 2, 2, 3]  # analyse's args

        @user_errors
        def analyse(model_name, sample_name, image_path, label_path, opacity, shown_classes, srm_step, arrows,
                    query_y, query_x, k_s, bane_layer, bane_class) -> list[Any]:
            """All four views of one image from one (cached) forward pass."""
            ctx = lab.context(model_name, sample_name, image_path, label_path)
            return (predict_tab.draw(ctx, opacity, shown_classes) + srm_tab.draw(ctx, srm_step, arrows)
                    + crm_tab.draw(ctx, query_y, query_x) + bane_tab.draw(lab, ctx, k_s, bane_layer, bane_class))

        def load_sample(sample_name: str | None):
            """Show the picked sample in the image box (an upload stays as it is)."""
            if not sample_name or sample_name == UPLOAD:
                return gr.skip()
            return samples.load(sample_name)[0]

        def use_upload() -> str:
            return UPLOAD

        def model_classes(model_name: str | None):
            card = store.cards.get(model_name)
            names_ = list(card.classes) if card else []
            return gr.CheckboxGroup(choices=names_, value=names_), gr.Dropdown(choices=[AUTO, *names_], value=AUTO)

        run_all = dict(fn=analyse, inputs=lab.inputs + controls, outputs=outputs)

        def follow(event: Any, name: str) -> None:
            """After a new image or model: the four views, then Errors' "This image" (cheap: the forward pass is
            cached) and Embeddings, whose projection of the old input is cleared rather than left to mislead."""
            event.then(**run_all, **lab.model_event(api_name=f"analyse_{name}")).then(
                **errors_tab.refresh, **lab.model_event(api_name=f"errors_image_{name}")).then(
                **embeddings_tab.mark_stale, api_name=f"embeddings_stale_{name}")

        gr.on([go.click, demo.load], **run_all, **lab.model_event(api_name="analyse"))
        follow(sample.input(load_sample, sample, image, api_name="load_sample", concurrency_limit=4), "sample")
        follow(image.upload(use_upload, None, sample, api_name="use_upload", concurrency_limit=4), "upload")
        follow(label.upload(use_upload, None, sample, api_name="use_label", concurrency_limit=4), "label")
        follow(model.input(model_classes, model, [predict_tab.classes, bane_tab.controls[2]], api_name="model_classes",
                           concurrency_limit=4), "model")
    demo.lab = lab  # for tests and benchmarks: the server state behind the page
    demo.tabs = dict(embeddings=embeddings_tab, errors=errors_tab, learn=learn_tab)
    # compile UMAP's numba kernels now, in the background, so no user's first projection pays for it
    demo.umap_warm_up = embeddings.warm_up_in_background() if warm_up_umap else None
    return demo


def _reported_val_miou(metrics: dict[str, Any] | None) -> float:
    value = (metrics or {}).get("val_miou")
    return float(value) if isinstance(value, (int, float)) else float("-inf")


def default_model(store: ModelStore, classes: Sequence[str] | None) -> str | None:
    """Among the models that predict `classes` (the pre-selected sample's, so the first page shows its labels
    in use), the one whose card reports the highest val mIoU (then the first by name); else the first model."""
    names = store.names()
    matching = [n for n in names if classes is not None and list(store.cards[n].classes) == list(classes)]
    if matching:
        return max(matching, key=lambda n: _reported_val_miou(store.cards[n].metrics))
    return names[0] if names else None


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


def check_max_side(max_side: int) -> None:
    if max_side < MIN_SIDE:
        raise ValueError(f"--max-side must be at least {MIN_SIDE} (the network's coarsest stride); got {max_side}")


def launch(args: argparse.Namespace, prevent_thread_lock: bool = False) -> gr.Blocks:
    """Serve the lab as `contextrast app` was asked to; returns the running Blocks."""
    auth = resolve_auth(args.auth, getattr(args, "auth_file", None))
    check_host(args.host, auth, args.insecure)
    check_max_side(args.max_side)
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))  # one request's matmuls use the cores, no more
    checkpoints = discover_checkpoints(args.checkpoints_dir, args.checkpoint or [])
    runs_dir = args.runs_dir
    if not args.no_worker:
        from contextrast.jobs import ensure_worker_running

        try:
            if ensure_worker_running(runs_dir) is not None:
                print(f"started a fine-tuning worker in the background (log: {Path(runs_dir) / 'worker.log'})",
                      flush=True)
        except ValueError as e:
            print(f"warning: no fine-tuning worker: {e}", flush=True)
    paths = default_paths(checkpoints, args.data, runs_dir, getattr(args, "data_root", None) or [],
                          [args.checkpoints_dir] if args.checkpoints_dir else [])
    demo = build_ui(checkpoints, args.data, max_side=args.max_side, runs_dir=runs_dir, paths=paths)
    output_files.install()  # concurrent downloads of one picture never see it half written
    demo.queue(default_concurrency_limit=1, max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, auth=auth, max_file_size=args.max_file_size,
                prevent_thread_lock=prevent_thread_lock, show_error=True, quiet=prevent_thread_lock,
                footer_links=["api"], app_kwargs={"middleware": [Middleware(LoginFirst)]})
    return demo
