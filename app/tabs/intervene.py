"""Intervene tab: switch off a part of the model on the image in view (SRM offsets, the neighbour mask, CRM) and
see what it contributed: the pixels whose class flipped, and per-class IoU before and after (METHOD.md §1)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.display import Picture, enlarge
from app.lab import Context, Lab, message_box, try_this
from app.state import digest
from contextrast.analysis import intervene
from contextrast.analysis.predict import colorize


def draw(lab: Lab, ctx: Context, name: str | None) -> list[Any]:
    """[flipped picture, prediction after, IoU figure, info]."""
    names, skipped = intervene.choices(ctx.loaded.model)
    if not names:
        why = "; ".join(sorted(set(skipped.values())))
        return [None, None, gr.Plot(None, visible=False),
                ctx.status(f"> ℹ️ Nothing to switch off in this model ({why}).")]
    name = name or names[0]
    if name not in names:
        raise ValueError(f"{name} does not apply to `{ctx.loaded.name}`: "
                         f"{skipped.get(name, 'pick one of ' + ', '.join(names))}")
    key = ("intervene", ctx.loaded.name, name, digest(ctx.input.rgb), digest(ctx.input.labels))

    def make() -> intervene.Effect:
        with ctx.loaded.lock:
            return intervene.intervene(ctx.loaded.model, ctx.run, name, ctx.input.labels)

    effect = lab.store.records.get_or_make(key, make)
    flips = ", ".join(f"{a} → {b} ({n})" for a, b, n in intervene.flip_counts(effect, ctx.classes)) or "none"
    lines = [f"**{name}**: {intervene.DESCRIPTIONS[name]}. On **{ctx.input.name}**, "
             f"{int(effect.flipped.sum())} pixels ({100 * effect.flipped_share:.1f} %) change class. "
             f"Most common flips: {flips}."]
    figure = gr.Plot(None, visible=False)
    if effect.miou_before is not None:
        lines.append(f"mIoU on this image: {100 * effect.miou_before:.1f} % as trained → "
                     f"{100 * effect.miou_after:.1f} % with {name} ({100 * (effect.miou_after - effect.miou_before):+.1f}"
                     " points).")
        figure = gr.Plot(intervene.iou_figure(effect, ctx.classes), visible=True)
    else:
        lines.append("No ground truth for this image: per-class IoU needs a label map.")
    if skipped:
        lines.append("Not applicable here: " + "; ".join(f"{n} ({why})" for n, why in skipped.items()) + ".")
    return [enlarge(intervene.flip_picture(ctx.input.rgb, effect, ctx.palette)),
            enlarge(colorize(effect.labels_after, ctx.palette)), figure,
            ctx.status(*lines)]


def build_intervene(lab: Lab) -> dict[str, Any]:
    everything = ["offsets_zeroed", "mean_offset_removed", "mean_offset_only", "mask_off", "crm_off"]
    with lab.page("Intervene"):
        try_this("pick *mean_offset_only*: if few pixels flip, the SRM mostly shifts the whole map; then *crm_off* "
                 "shows what the context module adds.")
        gr.Markdown("Switch off one part of the model on the image in view and see what it contributed. Only the "
                    "interventions that change something in the selected model are offered.")
        which = gr.Radio(everything, value=everything[0], label="Switch off")
        message = message_box()
        info = gr.Markdown(elem_id="intervene-info")
        with gr.Row():
            flipped = Picture(label="Pixels whose class flipped (in their new class's colour)", interactive=False,
                               format="png", height=340)
            after = Picture(label="Prediction with the part switched off", interactive=False, format="png",
                             height=340)
        ious = gr.Plot(label="Per-class IoU before / after", visible=False)
    outputs = [flipped, after, ious, info]

    def intervene_view(model, sample, image, label, name):
        return draw(lab, lab.context(model, sample, image, label), name)

    inputs = [*lab.inputs, which]
    lab.draws_input(intervene_view, inputs, outputs, message, api_name="intervene_view")
    lab.on(which.input, intervene_view, inputs, outputs, message, api_name="intervene", trigger_mode="always_last")

    def model_choices(model_name: str | None):
        if model_name not in lab.store.cards:
            return gr.skip()
        names, _ = intervene.choices(lab.store.get(model_name).model)
        return gr.Radio(choices=names or everything, value=(names or everything)[0])

    lab.on_model_change(model_choices, [which])
    lab.on_page_load(model_choices, [lab.components["model"]], [which])
    return dict(outputs=outputs, message=message)
