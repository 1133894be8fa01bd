"""Errors tab: per image, the TP/FP/FN map (class filter, mistakes only) and where a second checkpoint fixes or
breaks the first's pixels; for a whole split, the confusion matrix, per-class IoU and boundary IoU exactly as
`contextrast eval` computes them (engine.evaluate), with progress, a Cancel button and a cache, and with a
checkpoint B its per-class IoU beside A's."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np

from app.display import Picture, enlarge
from app.lab import Context, Lab, message_box, notices_md, status, try_this
from app.state import LRU
from contextrast.analysis import cards, errors
from contextrast.analysis.predict import prediction_maps
from contextrast.engine.evaluate import evaluate

ALL_CLASSES = "all classes"
NO_MODEL = "(none)"
SPLITS = ("val", "test", "train")


@dataclass
class ErrorsTab:
    cache: LRU
    stops: dict[str, threading.Event] = field(default_factory=dict)  # session → its evaluation's stop flag
    history: list[dict[str, Any]] = field(default_factory=list)  # every finished split run: for tests and logs

    def stop_flag(self, session: str) -> threading.Event:
        flag = self.stops.get(session)
        if flag is None:
            flag = self.stops[session] = threading.Event()
        return flag


def draw_image(lab: Lab, ctx: Context, cls_name: str | None, mistakes: bool, second: str | None) -> list[Any]:
    """[outcome picture, B against A picture, per-class fixed/broken figure, info] of one input."""
    truth = ctx.input.labels
    if truth is None:  # say so in the tab, as Predict and BANE do
        return [None, Picture(None, visible=False), gr.Plot(None, visible=False),
                status(notices_md(ctx.input.notices), "> ℹ️ The Errors view needs a ground truth: pick a labelled "
                       "sample, or upload a label map (PNG of class ids) with your image.")]
    classes = ctx.classes
    c = ctx.class_index(cls_name, ALL_CLASSES)
    pred = prediction_maps(ctx.run.logits).labels
    view = errors.render_outcomes(ctx.input.rgb, pred, truth, c, bool(mistakes))
    counts = " · ".join(f"{k}: {v}" for k, v in view.counts.items())
    lines = [notices_md(ctx.input.notices), f"**{ctx.input.name}**, {cls_name or ALL_CLASSES}: {counts} pixels"]
    if second in (None, "", NO_MODEL):
        return [enlarge(view.picture), Picture(None, visible=False), gr.Plot(None, visible=False),
                status(*lines, "Pick checkpoint B to compare two models.")]
    loaded_b = lab.store.get(second)
    cards.check_comparable(ctx.loaded.name, classes, second, loaded_b.card.classes)
    _, run_b = lab.store.run(second, ctx.input.rgb)
    pred_b = prediction_maps(run_b.logits).labels
    cmp = errors.compare(pred, pred_b, truth)
    lines.append(cmp.summary(ctx.loaded.name, second))
    picture = errors.render_comparison(ctx.input.rgb, errors.comparison_map(pred, pred_b, truth))
    return [enlarge(view.picture), Picture(enlarge(picture), visible=True),
            gr.Plot(errors.comparison_figure(cmp, classes, ctx.loaded.name, second), visible=True), status(*lines)]


def build_errors(lab: Lab, data_spec: str | None = None) -> ErrorsTab:
    class_names = lab.default_classes()
    comparable = [NO_MODEL, *cards.comparable(lab.store.cards, lab.default_model)]
    tab = ErrorsTab(cache=LRU(8))
    with lab.page("Errors"):
        try_this("filter by a class to split its mistakes into false positives (red) and false negatives (blue); "
                 "then pick checkpoint B to see what it fixes.")
        gr.Markdown("### This image\nGreen: right; red: wrong (with a class picked: red = false positive, blue = "
                    "false negative). Pick a second checkpoint to see where it **fixes** (green) or **breaks** (red) "
                    "the first one's pixels.")
        with gr.Row():
            cls = gr.Dropdown([ALL_CLASSES, *class_names], value=ALL_CLASSES, label="Class filter")
            only_mistakes = gr.Checkbox(False, label="Show only mistakes")
            other = gr.Dropdown(comparable, value=NO_MODEL, label="Compare with checkpoint B",
                                info="only checkpoints with the same classes")
        image_message = message_box()
        image_info = gr.Markdown(elem_id="errors-info")
        with gr.Row():
            outcome = Picture(label="TP / FP / FN", interactive=False, format="png", height=340)
            versus = Picture(label="B against the selected model (A)", interactive=False, format="png", height=340,
                              visible=False)  # shown once a checkpoint B is picked
        versus_plot = gr.Plot(label="Fixed and broken pixels per class", visible=False)

        gr.Markdown("### A whole split\nThe same numbers as `contextrast eval --data SPEC --split SPLIT`.")
        with gr.Row():
            spec = gr.Textbox(data_spec or "toy", label="Dataset spec",
                              info="e.g. toy:n=16,size=128x160 or camvid:/path")
            split = gr.Dropdown(list(SPLITS), value="val", label="Split")
            max_images = gr.Number(0, precision=0, label="Max images (0: all)", elem_id="errors-max")
            split_other = gr.Dropdown(comparable, value=NO_MODEL, label="Checkpoint B for the split")
            normalised = gr.Checkbox(True, label="Normalise rows", info="shares of each true class; off: pixels")
        with gr.Row():
            split_go = gr.Button("Evaluate the split", variant="primary")
            cancel = gr.Button("Cancel", variant="stop")
        split_message = message_box()
        split_info = gr.Markdown(elem_id="errors-split-info")
        with gr.Row():
            confusion = gr.Plot(label="Confusion matrix")
            ious = gr.Plot(label="Per-class IoU and boundary IoU")
        table = gr.Dataframe(headers=errors.table_headers(), label="Per class", interactive=False)
        metrics_json = gr.JSON(label="All metrics (as contextrast eval --json)")
    image_outputs = [outcome, versus, versus_plot, image_info]
    split_outputs = [confusion, ious, table, metrics_json, split_info]

    def errors_image(model, sample, image, label, cls_name, mistakes, second):
        return draw_image(lab, lab.context(model, sample, image, label), cls_name, mistakes, second)

    def evaluated(loaded: Any, spec_value: str, split_value: str, limit: int | None, flag: threading.Event,
                  progress: Any) -> tuple[dict[str, Any], bool]:
        key = (loaded.name, spec_value, split_value, limit)
        cached = tab.cache.get(key)
        if cached is not None:
            return cached, True
        dataset = lab.open_dataset(spec_value, split_value)
        cards.check_dataset_classes(dataset.info.classes, loaded.card.classes)
        progress((0, len(dataset) if limit is None else min(limit, len(dataset))), desc="evaluating", unit="images")
        with loaded.lock:
            metrics = evaluate(loaded.model, dataset, should_stop=flag.is_set, max_images=limit,
                               progress=lambda d, t: progress((d, t), desc=f"evaluating {loaded.name}", unit="images"))
        metrics.update(checkpoint=lab.paths.display(loaded.path), data=spec_value, split=split_value)
        tab.history.append(dict(key=key, images=metrics["images"], cancelled=metrics["cancelled"]))
        if not metrics["cancelled"]:
            tab.cache.put(key, metrics)
        return metrics, False

    def split_errors(model, spec_value, split_value, limit, second, norm, request: gr.Request,
                     progress=gr.Progress()):  # noqa: B008 - how Gradio asks for a progress bar
        spec_value = str(spec_value or "").strip()
        if not spec_value:
            raise ValueError("give a dataset spec, e.g. toy:n=16,size=128x160 or camvid:/path/to/camvid")
        if split_value not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split_value!r}")
        if limit is not None and int(limit) < 0:
            raise ValueError(f"max images must be a positive number (or 0 / empty for all); got {limit}")
        limit = int(limit) if limit else None  # 0 means all: the page's number box cannot be left empty
        try:
            loaded = lab.store.get(model)
        except ValueError as e:
            raise ValueError(f"the model above: {e}") from None
        loaded_b = None
        if second not in (None, "", NO_MODEL):
            loaded_b = lab.store.get(second)
            cards.check_comparable(loaded.name, loaded.card.classes, second, loaded_b.card.classes)
        flag = tab.stop_flag(getattr(request, "session_hash", None) or "-")
        flag.clear()
        metrics, cached = evaluated(loaded, spec_value, split_value, limit, flag, progress)
        lines = [f"`{loaded.name}` on **{spec_value}** / {split_value}: {metrics['images']} images in "
                 f"{metrics['seconds']:.1f} s" + (" — **cancelled**: the numbers cover only these images"
                                                   if metrics["cancelled"] else "") + (" (cached)" if cached else "")]
        classes = list(metrics["classes"])
        figure, rows, headers = errors.iou_figure(metrics), errors.per_class_table(metrics), errors.table_headers()
        if loaded_b is not None and not metrics["cancelled"]:
            metrics_b, _ = evaluated(loaded_b, spec_value, split_value, limit, flag, progress)
            ckey = (loaded.name, spec_value, split_value, limit, loaded_b.name)
            cmp = tab.cache.get(ckey)
            if cmp is None and not metrics_b["cancelled"]:
                dataset = lab.open_dataset(spec_value, split_value)
                with loaded.lock, loaded_b.lock:
                    cmp = errors.compare_on_dataset(loaded.model, loaded_b.model, dataset, should_stop=flag.is_set,
                                                    max_images=limit, progress=lambda d, t: progress(
                                                        (d, t), desc="comparing", unit="images"))
                if cmp.images == metrics["images"]:
                    tab.cache.put(ckey, cmp)
            if cmp is not None and not metrics_b["cancelled"]:
                lines.append(f"Over {cmp.images} images: " + cmp.summary(loaded.name, loaded_b.name))
                lines.append(f"mIoU {100 * metrics['miou']:.2f} % (`{loaded.name}`) → {100 * metrics_b['miou']:.2f} % "
                             f"(`{loaded_b.name}`): {100 * (metrics_b['miou'] - metrics['miou']):+.2f} points.")
                figure = errors.iou_comparison_figure(metrics, metrics_b, loaded.name, loaded_b.name)
                rows, headers = errors.per_class_table(metrics, metrics_b), errors.table_headers(loaded_b.name)
            else:
                lines.append("The comparison with B was cancelled.")
        return [errors.confusion_figure(np.asarray(metrics["confusion"]), classes, bool(norm)), figure,
                gr.Dataframe(value=rows, headers=headers), metrics, status(*lines)]

    def cancel_split(request: gr.Request) -> str:
        tab.stop_flag(getattr(request, "session_hash", None) or "-").set()
        return "Cancelling: the evaluation stops after the current image."

    def redraw_confusion(metrics, norm):
        if not metrics:
            return [gr.skip()]
        if not isinstance(metrics, dict) or not isinstance(metrics.get("classes"), list) or "confusion" not in metrics:
            raise ValueError("the metrics JSON needs its 'confusion' matrix and 'classes' list, as the split "
                             "evaluation writes them")
        # confusion_figure checks the class count before it converts the matrix
        return [errors.confusion_figure(metrics["confusion"], list(metrics["classes"]), bool(norm))]

    image_inputs = [*lab.inputs, cls, only_mistakes, other]
    lab.draws_input(errors_image, image_inputs, image_outputs, image_message, api_name="errors_image_view")
    lab.on([cls.input, only_mistakes.input, other.input], errors_image, image_inputs, image_outputs, image_message,
           api_name="errors_image")
    evaluation = lab.on(split_go.click, split_errors, [lab.components["model"], spec, split, max_images, split_other,
                                                       normalised], split_outputs, split_message,
                        api_name="errors_split")
    cancel.click(cancel_split, None, split_info, cancels=[evaluation], api_name="errors_cancel",
                 concurrency_limit=None, concurrency_id="cancel")
    lab.on(normalised.input, redraw_confusion, [metrics_json, normalised], [confusion], split_message, heavy=False,
           api_name="errors_confusion", concurrency_limit=4)

    def model_menus(model_name: str | None):
        card = lab.store.cards.get(model_name)
        menu = [NO_MODEL, *cards.comparable(lab.store.cards, model_name)]
        return (gr.Dropdown(choices=[ALL_CLASSES, *(card.classes if card else [])], value=ALL_CLASSES),
                gr.Dropdown(choices=menu, value=NO_MODEL), gr.Dropdown(choices=menu, value=NO_MODEL))

    lab.on_model_change(model_menus, [cls, other, split_other])
    return tab
