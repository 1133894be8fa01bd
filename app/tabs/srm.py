"""SRM tab: for one of the three SRMs, the offsets Δ (colours, arrows, length in grid and image pixels), what the
neighbour mask changed, the mask's entropy, and the feature before and after warping (METHOD.md §1)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.display import enlarge, with_scale
from app.lab import Context, Lab, image_panel, message_box, notices_md, status, try_this
from contextrast.analysis import offsets


def draw(ctx: Context, step: int | None, max_arrows: float, scales: dict) -> tuple[list[Any], dict]:
    """[flow, wheel, arrows, magnitude, initial, change, entropy, before, after, info] and the scales used."""
    try:
        v = offsets.render(ctx.run, int(step or 0), int(max_arrows), scales)
    except ValueError as e:
        if "bilinear" not in str(e):
            raise
        # a model without SRM: nothing to show here, say why (and drop the pictures of another model)
        return [None] * 9 + [ctx.status(f"> ℹ️ {e}")], {}
    s = v.stats
    note = "" if v.initial is not None else "This model has no neighbour mask (srm_nomask): Δ = Δ′."
    text = status(
        notices_md(ctx.input.notices),
        f"Step **{offsets.STEP_NAMES[v.step]}** · grid {v.grid[1]}×{v.grid[0]} (1 grid px = {v.stride:g} image px)",
        f"Mean offset Δ = ({s['mean Δ x (grid px)']:+.2f}, {s['mean Δ y (grid px)']:+.2f}) grid px = "
        f"({s['mean Δ x (image px)']:+.1f}, {s['mean Δ y (image px)']:+.1f}) image px · mean |Δ| "
        f"{s['mean |Δ| (grid px)']:.2f} grid px = {s['mean |Δ| (image px)']:.1f} image px · "
        f"{100 * s['share |Δ| > 2 grid px']:.0f} % of pixels reach further than 2 grid px",
        offsets.arrow_scale_sentence(v.arrow_scale), note)
    sc = v.scales
    values = [with_scale(v.flow, None), v.wheel, v.arrows, with_scale(v.magnitude, sc["magnitude"]),
              with_scale(v.initial, None), with_scale(v.change, sc.get("change")),
              with_scale(v.entropy, sc.get("entropy")), enlarge(v.before), enlarge(v.after), text]
    return values, sc


def build_srm(lab: Lab) -> dict[str, Any]:
    c = offsets.CAPTIONS
    with lab.page("SRM offsets"):
        try_this("switch between the three steps and compare the mean offset in image pixels; tick *Keep colour "
                 "scales* above and change the image to compare |Δ| on one scale.")
        gr.Markdown("The Semantic Refinement Module learns, for every pixel of the finer grid, where to fetch the "
                    "upsampled coarse feature from (an offset Δ), instead of always taking the pixel straight below.")
        with gr.Row():
            step = gr.Radio(list(offsets.STEP_NAMES), value=offsets.STEP_NAMES[2], type="index", label="SRM step")
            max_arrows = gr.Slider(8, 48, value=24, step=4, label="Arrows along the longer side")
        message = message_box()
        info = gr.Markdown(elem_id="srm-info")
        with gr.Row():
            flow = image_panel("Offset Δ (colour = direction)", c["flow"])
            wheel = image_panel("Colour key", c["wheel"], height=160, width=160)
            magnitude = image_panel("|Δ|", c["magnitude"])
        with gr.Row():
            arrows = gr.Plot(label="Δ as arrows")
        gr.Markdown(c["arrows"])
        with gr.Row():
            initial = image_panel("Initial offset Δ′", c["initial"])
            change = image_panel("|Δ − Δ′|", c["change"])
            entropy = image_panel("Neighbour-mask entropy", c["entropy"])
        with gr.Row():
            before = image_panel("Feature before warping", c["before"])
            after = image_panel("Feature after warping", c["after"])
    outputs = [flow, wheel, arrows, magnitude, initial, change, entropy, before, after, info]

    def srm_view(model, sample, image, label, keep, step_index, arrows_count, request: gr.Request):
        ctx = lab.context(model, sample, image, label)
        values, used = draw(ctx, step_index, arrows_count, lab.kept_scales(request, keep, "srm"))
        lab.remember_scales(request, "srm", used)
        return values

    inputs = [*lab.inputs, lab.components["keep_scale"], step, max_arrows]
    lab.draws_input(srm_view, inputs, outputs, message, api_name="srm_view")
    lab.on([step.input, max_arrows.release], srm_view, inputs, outputs, message, api_name="srm",
           trigger_mode="always_last")
    return dict(outputs=outputs, message=message)
