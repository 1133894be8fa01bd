"""BANE tab: what boundary-aware negative sampling picked for one class at one layer, drawn from the
loss's own record, and the per-class pixel-to-anchor loss terms (METHOD.md §2 "BANE")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from app.display import enlarge
from app.lab import Context, Lab, image_panel, notices_md, status, user_errors
from app.state import digest
from contextrast.analysis import bane
from contextrast.losses.record import BANE_NEGATIVE

AUTO = "auto (most hard negatives)"


def auto_class(record: bane.LossRecord, layer: int, num_classes: int) -> int:
    """The class with the most sampled BANE negatives at `layer`, else the most error pixels, else 0."""
    rec = bane.layer_record(record, layer)
    s = rec.samples
    counts = np.bincount(s.cls[s.role.long() == BANE_NEGATIVE].numpy(), minlength=num_classes)
    if counts.any():
        return int(counts.argmax())
    errors = [int(bane.error_region(rec, c).sum()) for c in range(num_classes)]
    return int(np.argmax(errors))


@dataclass
class BaneTab:
    controls: list[Any]
    outputs: list[Any]

    def blank(self, message: str) -> list[Any]:
        return [None] * (len(self.outputs) - 1) + [message]

    def draw(self, lab: Lab, ctx: Context, k_s: float, layer: int | None, cls_name: str | None) -> list[Any]:
        if ctx.input.labels is None:
            return self.blank(status(notices_md(ctx.input.notices),
                                     "> ℹ️ BANE needs a ground truth: pick a labelled sample, or upload a label map "
                                     "(PNG of class ids) with your image."))
        key = (ctx.loaded.name, digest(ctx.input.rgb), digest(ctx.input.labels), float(k_s))

        def make() -> bane.LossRecord:
            with ctx.loaded.lock:
                return bane.run_loss(ctx.run, ctx.input.labels, len(ctx.classes), bane_percent=float(k_s))

        record = lab.store.records.get_or_make(key, make)
        layer = int(layer or 0)
        classes = ctx.classes
        if cls_name in (None, "", AUTO):
            cls = auto_class(record, layer, len(classes))
        elif cls_name in classes:
            cls = classes.index(cls_name)
        else:
            raise ValueError(f"unknown class {cls_name!r}; this model's classes: {', '.join(classes)}")
        v = bane.render(record, ctx.input.rgb, layer, cls, classes)
        counts = " · ".join(f"{k}: {n}" for k, n in v.counts.items())
        terms = " · ".join(f"{k} = {t:.4f}" for k, t in v.terms.items())
        text = status(notices_md(ctx.input.notices),
                      f"**{classes[cls]}** at **{bane.LAYER_NAMES[layer]}**, K_s = {k_s:g} % · sampled: {counts}",
                      f"Loss terms on this image: {terms}")
        return [enlarge(v.error), enlarge(v.distance), v.samples, v.losses, text]


def build_bane(lab: Lab) -> BaneTab:
    c = bane.CAPTIONS
    class_names = lab.default_classes()
    gr.Markdown("Contextrast contrasts each pixel embedding with its class anchor. BANE picks the *hard* negatives: "
                "wrongly predicted pixels close to the edge of their error region. These pictures come from the "
                "loss's own record of what it sampled on this image.")
    with gr.Row():
        k_s = gr.Slider(1, 100, value=50, step=1, label="K_s: keep error pixels in the lowest K_s % of distances")
        layer = gr.Radio(list(bane.LAYER_NAMES), value=bane.LAYER_NAMES[1], type="index", label="Layer")
        cls = gr.Dropdown([AUTO, *class_names], value=AUTO, label="Class (anchor)")
    info = gr.Markdown()
    with gr.Row():
        error = image_panel("Error region", c["error"], height=340)
        distance = image_panel("Distance to the region's edge", c["distance"], height=340)
    samples = gr.Plot(label="Sampled pixels")
    gr.Markdown(c["samples"])
    losses = gr.Plot(label="Per-class loss")
    gr.Markdown(c["loss"])
    tab = BaneTab(controls=[k_s, layer, cls], outputs=[error, distance, samples, losses, info])

    @user_errors
    def bane_endpoint(model, sample, image, label, k_s_value, layer_index, cls_name):
        return tab.draw(lab, lab.context(model, sample, image, label), k_s_value, layer_index, cls_name)

    gr.on([k_s.release, layer.change, cls.input], bane_endpoint, inputs=lab.inputs + tab.controls,
          outputs=tab.outputs, **lab.model_event(api_name="bane"))
    return tab
