"""Predict tab: prediction overlay (opacity, per-class toggles), ground truth vs prediction slider,
legend, confidence and entropy maps, inference time."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.display import enlarge
from app.lab import Context, Lab, image_panel, notices_md, status, user_errors
from contextrast.analysis import predict

CAPTIONS = {
    "overlay": "The model's prediction, each class in its colour over the image; untick a class to hide it.",
    "compare": "Ground truth (left) | prediction (right): drag the handle",
    "confidence": "Confidence: the winning class's softmax probability (bright = sure).",
    "entropy": "Uncertainty: the entropy of the class probabilities, 0 to log K (bright = unsure, usually at boundaries).",
}


def legend_html(entries: list[predict.LegendEntry]) -> str:
    chips = "".join(
        f'<span style="display:inline-flex;align-items:center;margin:2px 10px 2px 0">'
        f'<span style="width:14px;height:14px;border-radius:3px;background:{e.colour};'
        f'display:inline-block;margin-right:5px;border:1px solid #0003"></span>'
        f'{e.class_id}: {html.escape(e.name)} <small style="opacity:.7;margin-left:4px">{100 * e.share:.1f}%</small></span>'
        for e in entries)
    return f'<div style="line-height:1.8">{chips}</div>'


@dataclass
class PredictTab:
    controls: list[Any]
    outputs: list[Any]
    classes: gr.CheckboxGroup

    def draw(self, ctx: Context, opacity: float, shown: list[str] | None) -> list[Any]:
        maps = predict.prediction_maps(ctx.run.logits)
        classes = ctx.classes
        visible = [i for i, c in enumerate(classes) if shown is None or c in shown]
        over = predict.overlay(ctx.input.rgb, maps.labels, ctx.palette, float(opacity), visible)
        lines = [f"**{ctx.input.name}** · {ctx.input.rgb.shape[1]}×{ctx.input.rgb.shape[0]} px · "
                 f"model `{ctx.loaded.name}` · forward pass {1000 * ctx.run.seconds:.0f} ms on CPU"]
        if ctx.input.labels is not None:
            acc = predict.pixel_accuracy(maps.labels, ctx.input.labels)
            lines.append(f"Pixel accuracy against the ground truth: {100 * acc:.1f} %")
            compare = gr.ImageSlider(value=(enlarge(predict.colorize(ctx.input.labels, ctx.palette)),
                                            enlarge(predict.colorize(maps.labels, ctx.palette))), visible=True)
        else:
            lines.append("No ground truth for this image: upload a label map (PNG of class ids) to compare.")
            compare = gr.ImageSlider(value=None, visible=False)
        return [enlarge(over), compare, legend_html(predict.legend(maps.labels, classes, ctx.palette)),
                enlarge(predict.confidence_rgb(maps)), enlarge(predict.entropy_rgb(maps)),
                status(notices_md(ctx.input.notices), *lines)]


def build_predict(lab: Lab) -> PredictTab:
    class_names = lab.default_classes()
    with gr.Row():
        opacity = gr.Slider(0.0, 1.0, value=0.55, step=0.05, label="Overlay opacity")
        classes = gr.CheckboxGroup(choices=class_names, value=class_names, label="Classes shown")
    info = gr.Markdown()
    with gr.Row():
        with gr.Column():
            overlay = gr.Image(label="Prediction overlay", interactive=False, format="png", height=340)
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
    tab = PredictTab(controls=[opacity, classes], outputs=[overlay, compare, legend, confidence, entropy, info],
                     classes=classes)

    @user_errors
    def predict_endpoint(model, sample, image, label, opacity_value, shown):
        return tab.draw(lab.context(model, sample, image, label), opacity_value, shown)

    gr.on([opacity.release, classes.input], predict_endpoint, inputs=lab.inputs + tab.controls,
          outputs=tab.outputs, **lab.model_event(api_name="predict"))
    return tab
