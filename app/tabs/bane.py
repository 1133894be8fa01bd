"""BANE tab: what boundary-aware negative sampling picked for one class at one layer, drawn from the
loss's own record (run with the model card's loss settings), and the per-class pixel-to-anchor loss terms
(METHOD.md §2 "BANE")."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from app.display import with_scale
from app.lab import Context, Lab, image_panel, message_box, try_this
from app.state import digest
from contextrast.analysis import bane, cards
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


def blank(ctx: Context, message: str) -> list[Any]:
    return [None] * 4 + [ctx.status(f"> ℹ️ {message}")]


def draw(lab: Lab, ctx: Context, k_s: float, layer: int | None, cls_name: str | None, scales: dict
         ) -> tuple[list[Any], dict]:
    """[error, distance, samples figure, loss figure, info] and the scales used."""
    if k_s is None or not 1 <= float(k_s) <= 100:
        raise ValueError(f"K_s must lie in 1..100 %; got {k_s!r}")
    layer = int(layer or 0)
    if ctx.input.labels is None:
        return blank(ctx, "BANE needs a ground truth: pick a labelled sample, or upload a label map (PNG of class "
                          "ids) with your image."), {}
    untrained = cards.untrained_head_message(ctx.loaded.name, ctx.loaded.card, layer, "BANE record")
    if untrained:
        return blank(ctx, untrained), {}
    classes = ctx.classes
    cls = ctx.class_index(cls_name, AUTO)
    config = cards.training_loss(ctx.loaded.card)
    key = (ctx.loaded.name, digest(ctx.input.rgb), digest(ctx.input.labels), float(k_s))

    def make() -> bane.LossRecord:
        with ctx.loaded.lock:
            return bane.run_loss(ctx.run, ctx.input.labels, len(classes), bane_percent=float(k_s), config=config)

    record = lab.store.records.get_or_make(key, make)
    cls = auto_class(record, layer, len(classes)) if cls is None else cls
    v = bane.render(record, ctx.input.rgb, layer, cls, classes, scales.get("distance"), rule=config.bane_rule)
    counts = " · ".join(f"{k}: {n}" for k, n in v.counts.items())
    terms = " · ".join(f"{k} = {t:.4f}" for k, t in v.terms.items())
    text = ctx.status(
                  f"**{classes[cls]}** at **{bane.LAYER_NAMES[layer]}**, K_s = {float(k_s):g} % · sampled: {counts}",
                  f"Loss settings from the model card: τ = {config.tau:g}, w_h = {config.w_h:g}, BANE rule "
                  f"{config.bane_rule}, distances at stride {config.bane_distance_stride or 'of each layer'}, "
                  f"K = {config.max_negatives}, P = {config.max_positives} (K_s as set above).",
                  f"Loss terms on this image: {terms}", v.note)
    used = {"distance": v.distance_scale} if v.distance_scale is not None else {}
    return [with_scale(v.error, None), with_scale(v.distance, v.distance_scale), v.samples, v.losses, text], used


def build_bane(lab: Lab) -> dict[str, Any]:
    c = bane.CAPTIONS
    class_names = lab.default_classes()
    with lab.page("BANE"):
        try_this("lower K_s from 50 to 10 (type it and press Enter): fewer, closer-to-the-edge red crosses remain.")
        gr.Markdown("Contextrast contrasts each pixel embedding with its class anchor. BANE picks the *hard* "
                    "negatives: wrongly predicted pixels close to the edge of their error region. These pictures come "
                    "from the loss's own record of what it sampled on this image.")
        with gr.Row():
            k_s = gr.Slider(1, 100, value=50, step=1, label="K_s: keep error pixels in the lowest K_s % of distances",
                            elem_id="bane-ks")
            layer = gr.Radio(list(bane.LAYER_NAMES), value=bane.LAYER_NAMES[1], type="index", label="Layer")
            cls = gr.Dropdown([AUTO, *class_names], value=AUTO, label="Class (anchor)")
        message = message_box()
        info = gr.Markdown(elem_id="bane-info")
        with gr.Row():
            error = image_panel("Error region", c["error"], height=340)
            distance = image_panel("Distance to the region's edge", c["distance"], height=340)
        samples = gr.Plot(label="Sampled pixels")
        gr.Markdown(c["samples"])
        losses = gr.Plot(label="Per-class loss")
        gr.Markdown(c["loss"])
    outputs = [error, distance, samples, losses, info]

    def bane_view(model, sample, image, label, keep, k_s_value, layer_index, cls_name, request: gr.Request):
        ctx = lab.context(model, sample, image, label)
        values, used = draw(lab, ctx, k_s_value, layer_index, cls_name, lab.kept_scales(request, keep, "bane"))
        lab.remember_scales(request, "bane", used)
        return values

    inputs = [*lab.inputs, lab.components["keep_scale"], k_s, layer, cls]
    lab.draws_input(bane_view, inputs, outputs, message, api_name="bane_view")
    lab.on([k_s.release, layer.input, cls.input], bane_view, inputs, outputs, message, api_name="bane",
           trigger_mode="always_last")

    def model_classes(model_name: str | None):
        card = lab.store.cards.get(model_name)
        return gr.Dropdown(choices=[AUTO, *(card.classes if card else [])], value=AUTO)

    lab.on_model_change(model_classes, [cls])
    return dict(outputs=outputs, message=message)
