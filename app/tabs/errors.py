"""Errors tab: per image, the TP/FP/FN map (class filter, mistakes only) and where a second checkpoint fixes or
breaks the first's pixels; for a whole split, the confusion matrix, per-class IoU and boundary IoU exactly as
`contextrast eval` computes them (engine.evaluate), with progress, a Cancel button and a cache."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np

from app.display import enlarge
from app.lab import Lab, notices_md, status, user_errors
from app.state import LRU
from contextrast.analysis import errors
from contextrast.analysis.predict import prediction_maps
from contextrast.engine.evaluate import evaluate

ALL_CLASSES = "all classes"
NO_MODEL = "(none)"
SPLITS = ("val", "test", "train")


@dataclass
class ErrorsTab:
    image_controls: list[Any]
    image_outputs: list[Any]
    split_controls: list[Any]
    split_outputs: list[Any]
    cache: LRU
    stops: dict[str, threading.Event] = field(default_factory=dict)  # session → its evaluation's stop flag
    history: list[dict[str, Any]] = field(default_factory=list)  # every finished split run: for tests and logs
    refresh: dict[str, Any] = field(default_factory=dict)  # event kwargs: redraw "This image" for the current input

    def stop_flag(self, session: str) -> threading.Event:
        flag = self.stops.get(session)
        if flag is None:
            flag = self.stops[session] = threading.Event()
        return flag


def build_errors(lab: Lab, data_spec: str | None = None) -> ErrorsTab:
    names = lab.store.names()
    class_names = lab.default_classes()
    gr.Markdown("### This image\nGreen: right; red: wrong (with a class picked: red = false positive, blue = false "
                "negative). Pick a second checkpoint to see where it **fixes** (green) or **breaks** (red) the "
                "first one's pixels.")
    with gr.Row():
        cls = gr.Dropdown([ALL_CLASSES, *class_names], value=ALL_CLASSES, label="Class filter")
        only_mistakes = gr.Checkbox(False, label="Show only mistakes")
        other = gr.Dropdown([NO_MODEL, *names], value=NO_MODEL, label="Compare with checkpoint B")
        image_go = gr.Button("Show errors", variant="primary")
    image_info = gr.Markdown()
    with gr.Row():
        outcome = gr.Image(label="TP / FP / FN", interactive=False, format="png", height=340)
        versus = gr.Image(label="B against the selected model (A)", interactive=False, format="png", height=340,
                          visible=False)  # shown once a checkpoint B is picked
    versus_plot = gr.Plot(label="Fixed and broken pixels per class", visible=False)

    gr.Markdown("### A whole split\nThe same numbers as `contextrast eval --data SPEC --split SPLIT`.")
    with gr.Row():
        spec = gr.Textbox(data_spec or "toy", label="Dataset spec", info="e.g. toy:n=16,size=128x160 or camvid:/path")
        split = gr.Dropdown(list(SPLITS), value="val", label="Split")
        max_images = gr.Number(0, precision=0, label="Max images (0: all)")
        normalised = gr.Checkbox(False, label="Normalise rows")
    with gr.Row():
        split_go = gr.Button("Evaluate the split", variant="primary")
        cancel = gr.Button("Cancel", variant="stop")
    split_info = gr.Markdown()
    with gr.Row():
        confusion = gr.Plot(label="Confusion matrix")
        ious = gr.Plot(label="Per-class IoU and boundary IoU")
    table = gr.Dataframe(headers=["class", "IoU %", "Acc %", "boundary IoU %"], label="Per class", interactive=False)
    metrics_json = gr.JSON(label="All metrics (as contextrast eval --json)")
    tab = ErrorsTab(image_controls=[cls, only_mistakes, other], image_outputs=[outcome, versus, versus_plot, image_info],
                    split_controls=[spec, split, max_images, other, normalised],
                    split_outputs=[confusion, ious, table, metrics_json, split_info], cache=LRU(8))

    @user_errors
    def image_errors(model, sample, image, label, cls_name, mistakes, second):
        ctx = lab.context(model, sample, image, label)
        truth = ctx.input.labels
        if truth is None:  # say so in the tab, as Predict and BANE do, instead of a transient error toast
            return [None, gr.Image(None, visible=False), gr.Plot(None, visible=False),
                    status(notices_md(ctx.input.notices), "> ℹ️ The Errors view needs a ground truth: pick a labelled "
                           "sample, or upload a label map (PNG of class ids) with your image.")]
        classes = ctx.classes
        if cls_name in (None, "", ALL_CLASSES):
            c = None
        elif cls_name in classes:
            c = classes.index(cls_name)
        else:
            raise ValueError(f"unknown class {cls_name!r}; this model's classes: {', '.join(classes)}")
        pred = prediction_maps(ctx.run.logits).labels
        view = errors.render_outcomes(ctx.input.rgb, pred, truth, c, bool(mistakes))
        counts = " · ".join(f"{k}: {v}" for k, v in view.counts.items())
        lines = [notices_md(ctx.input.notices), f"**{ctx.input.name}**, {cls_name or ALL_CLASSES}: {counts} pixels"]
        if second in (None, "", NO_MODEL):
            return [enlarge(view.picture), gr.Image(None, visible=False), gr.Plot(None, visible=False),
                    status(*lines, "Pick checkpoint B to compare two models.")]
        loaded_b, run_b = lab.store.run(second, ctx.input.rgb)
        if list(loaded_b.card.classes) != classes:
            raise ValueError(f"{second} predicts other classes than {ctx.loaded.name}; compare checkpoints trained "
                             "on the same classes")
        pred_b = prediction_maps(run_b.logits).labels
        codes = errors.comparison_map(pred, pred_b, truth)
        cmp = errors.compare(pred, pred_b, truth)
        lines.append(cmp.summary(ctx.loaded.name, second))
        return [enlarge(view.picture), gr.Image(enlarge(errors.render_comparison(ctx.input.rgb, codes)), visible=True),
                gr.Plot(errors.comparison_figure(cmp, classes, ctx.loaded.name, second), visible=True), status(*lines)]

    @user_errors
    def split_errors(model, spec_value, split_value, limit, second, norm, request: gr.Request,
                     progress=gr.Progress()):  # noqa: B008 - how Gradio asks for a progress bar
        if not spec_value or not str(spec_value).strip():
            raise ValueError("give a dataset spec, e.g. toy:n=16,size=128x160 or camvid:/path/to/camvid")
        if split_value not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split_value!r}")
        if limit is not None and int(limit) < 0:
            raise ValueError(f"max images must be a positive number (or 0 / empty for all); got {limit}")
        limit = int(limit) if limit else None  # 0 means all: the page's number box cannot be left empty
        loaded = lab.store.get(model)
        key = (loaded.name, str(spec_value).strip(), split_value, limit)
        flag = tab.stop_flag(getattr(request, "session_hash", None) or "-")
        flag.clear()
        cached = tab.cache.get(key)
        if cached is None:
            dataset = lab.open_dataset(str(spec_value).strip(), split_value)
            if list(dataset.info.classes) != list(loaded.card.classes):
                raise ValueError(f"the dataset's classes ({', '.join(dataset.info.classes)}) are not the model's "
                                 f"({', '.join(loaded.card.classes)}); evaluate on data with the same classes")
            progress((0, len(dataset) if limit is None else min(limit, len(dataset))), desc="evaluating", unit="images")
            with loaded.lock:
                metrics = evaluate(loaded.model, dataset, progress=lambda d, t: progress((d, t), desc="evaluating",
                                                                                          unit="images"),
                                   should_stop=flag.is_set, max_images=limit)
            metrics.update(checkpoint=lab.paths.display(loaded.path), data=str(spec_value).strip(), split=split_value)
            tab.history.append(dict(key=key, images=metrics["images"], cancelled=metrics["cancelled"]))
            if not metrics["cancelled"]:
                tab.cache.put(key, metrics)
        else:
            metrics = cached
        lines = [f"`{loaded.name}` on **{key[1]}** / {split_value}: {metrics['images']} images in "
                 f"{metrics['seconds']:.1f} s" + (" — **cancelled**: the numbers cover only these images"
                                                   if metrics["cancelled"] else "") + (" (cached)" if cached else "")]
        if second not in (None, "", NO_MODEL) and not metrics["cancelled"]:
            loaded_b = lab.store.get(second)
            if list(loaded_b.card.classes) != list(loaded.card.classes):
                raise ValueError(f"{second} predicts other classes than {loaded.name}")
            ckey = key + (loaded_b.name,)
            cmp = tab.cache.get(ckey)
            if cmp is None:
                dataset = lab.open_dataset(key[1], split_value)
                with loaded.lock, loaded_b.lock:
                    cmp = errors.compare_on_dataset(loaded.model, loaded_b.model, dataset,
                                                    progress=lambda d, t: progress((d, t), desc="comparing",
                                                                                   unit="images"),
                                                    should_stop=flag.is_set, max_images=limit)
                if cmp.images == metrics["images"]:
                    tab.cache.put(ckey, cmp)
            lines.append(f"Over {cmp.images} images: " + cmp.summary(loaded.name, loaded_b.name))
        classes = list(metrics["classes"])
        return [errors.confusion_figure(np.asarray(metrics["confusion"]), classes, bool(norm)),
                errors.iou_figure(metrics), errors.per_class_table(metrics), metrics, status(*lines)]

    def cancel_split(request: gr.Request) -> str:
        tab.stop_flag(getattr(request, "session_hash", None) or "-").set()
        return "Cancelling: the evaluation stops after the current image."

    @user_errors
    def redraw_confusion(metrics, norm):
        if not metrics:
            return gr.skip()
        return errors.confusion_figure(np.asarray(metrics["confusion"]), list(metrics["classes"]), bool(norm))

    tab.refresh = dict(fn=image_errors, inputs=lab.inputs + tab.image_controls, outputs=tab.image_outputs)
    gr.on([image_go.click, cls.input, only_mistakes.input], **tab.refresh, **lab.model_event(api_name="errors_image"))
    evaluation = split_go.click(split_errors, inputs=[lab.components["model"], spec, split, max_images, other,
                                                     normalised],
                                outputs=tab.split_outputs, **lab.model_event(api_name="errors_split"))
    cancel.click(cancel_split, None, split_info, cancels=[evaluation], api_name="errors_cancel",
                 concurrency_limit=None, concurrency_id="cancel")
    normalised.change(redraw_confusion, [metrics_json, normalised], confusion, api_name="errors_confusion",
                      concurrency_limit=4)
    return tab
