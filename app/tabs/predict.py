"""Predict tab: prediction overlay (opacity, per-class toggles) with a hover naming each pixel's class, probability
and ground truth; ground truth vs prediction slider, legend, confidence and entropy maps with their colour bars."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from app.display import enlarge, with_scale
from app.lab import Context, Lab, image_panel, message_box, notices_md, status, try_this
from contextrast.analysis import predict

CAPTIONS = {
    "overlay": "The model's prediction, each class in its colour over the image; hover a pixel for its class, "
               "probability and ground truth; untick a class to hide it.",
    "compare": "Ground truth (left) | prediction (right): drag the handle",
    "confidence": "Confidence: the winning class's softmax probability (bright = sure), on a fixed 0–1 scale.",
    "entropy": "Uncertainty: the entropy of the class probabilities divided by log K, 0 to 1 (bright = unsure, "
               "usually at boundaries).",
}


def legend_html(entries: list[predict.LegendEntry]) -> str:
    chips = "".join(
        f'<span style="display:inline-flex;align-items:center;margin:2px 10px 2px 0">'
        f'<span style="width:14px;height:14px;border-radius:3px;background:{e.colour};'
        f'display:inline-block;margin-right:5px;border:1px solid #0003"></span>'
        f'{e.class_id}: {html.escape(e.name)} <small style="opacity:.7;margin-left:4px">{100 * e.share:.1f}%</small></span>'
        for e in entries)
    return f'<div style="line-height:1.8">{chips}</div>'


def draw(ctx: Context, opacity: float, shown: list[str] | None) -> list[Any]:
    """[overlay figure, compare slider, legend, confidence, entropy, info] of one input."""
    if opacity is None or not 0.0 <= float(opacity) <= 1.0:
        raise ValueError(f"opacity must lie in 0..1; got {opacity!r}")
    maps = predict.prediction_maps(ctx.run.logits)
    classes = ctx.classes
    unknown = [c for c in (shown or []) if c not in classes]
    visible = [i for i, c in enumerate(classes) if shown is None or c in shown]
    over = predict.overlay(ctx.input.rgb, maps.labels, ctx.palette, float(opacity), visible)
    lines = [f"**{ctx.input.name}** · {ctx.input.rgb.shape[1]}×{ctx.input.rgb.shape[0]} px · "
             f"model `{ctx.loaded.name}` · forward pass {1000 * ctx.run.seconds:.0f} ms on CPU"]
    if unknown:
        lines.append(f"Not classes of this model (ignored): {', '.join(unknown)}.")
    if ctx.input.labels is not None:
        acc = predict.pixel_accuracy(maps.labels, ctx.input.labels)
        lines.append(f"Pixel accuracy against the ground truth: {100 * acc:.1f} %")
        compare = gr.ImageSlider(value=(enlarge(predict.colorize(ctx.input.labels, ctx.palette)),
                                        enlarge(predict.colorize(maps.labels, ctx.palette))), visible=True)
    else:
        lines.append("No ground truth for this image: upload a label map (PNG of class ids) to compare.")
        compare = gr.ImageSlider(value=None, visible=False)
    figure = predict.hover_figure(over, maps, ctx.input.labels, classes)
    return [figure, compare, legend_html(predict.legend(maps.labels, classes, ctx.palette)),
            with_scale(predict.confidence_rgb(maps), predict.CONFIDENCE_SCALE),
            with_scale(predict.entropy_rgb(maps), predict.ENTROPY_SCALE), status(notices_md(ctx.input.notices), *lines)]


def build_predict(lab: Lab) -> dict[str, Any]:
    class_names = lab.default_classes()
    with lab.page("Predict"):
        try_this("hover the overlay to read a pixel's class and probability; untick *Road* or *Sky* to see what "
                 "is left; drag the slider to compare with the ground truth.")
        with gr.Row():
            opacity = gr.Slider(0.0, 1.0, value=0.55, step=0.05, label="Overlay opacity", elem_id="predict-opacity")
            classes = gr.CheckboxGroup(choices=class_names, value=class_names, label="Classes shown",
                                      elem_id="predict-classes")
        message = message_box()
        info = gr.Markdown(elem_id="predict-info")
        lab.first_view_id = info.elem_id  # the page opens on this tab: its text marks the first page drawn
        with gr.Row():
            with gr.Column():
                overlay = gr.Plot(label="Prediction overlay (hover a pixel)", elem_id="predict-overlay")
                gr.Markdown(CAPTIONS["overlay"])
            with gr.Column():
                # the caption is the label, so it hides with the slider when there is no ground truth; max_height,
                # not height: with a fixed height Gradio misaligns the two halves
                compare = gr.ImageSlider(label=CAPTIONS["compare"], interactive=False, visible=False, format="png",
                                         max_height=340)
        legend = gr.HTML(label="Legend")
        with gr.Row():
            confidence = image_panel("Confidence", CAPTIONS["confidence"], height=260)
            entropy = image_panel("Entropy", CAPTIONS["entropy"], height=260)
    outputs = [overlay, compare, legend, confidence, entropy, info]

    def predict_view(model, sample, image, label, opacity_value, shown):
        return draw(lab.context(model, sample, image, label), opacity_value, shown)

    inputs = lab.inputs + [opacity, classes]
    lab.draws_input(predict_view, inputs, outputs, message, api_name="predict_view")
    lab.on([opacity.release, classes.input], predict_view, inputs, outputs, message, api_name="predict",
           trigger_mode="always_last")

    def model_classes(model_name: str | None):
        card = lab.store.cards.get(model_name)
        names = list(card.classes) if card else []
        return gr.CheckboxGroup(choices=names, value=names)

    lab.on_model_change(model_classes, [classes])
    return dict(outputs=outputs, controls=[opacity, classes], message=message)
