"""SRM tab: for one of the three SRMs, the offsets Δ (colours, arrows, length), what the neighbour
mask changed, the mask's entropy, and the feature before and after warping (METHOD.md §1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.display import enlarge
from app.lab import Context, Lab, image_panel, notices_md, status, user_errors
from contextrast.analysis import offsets


@dataclass
class SrmTab:
    controls: list[Any]
    outputs: list[Any]

    def blank(self, message: str) -> list[Any]:
        return [None] * (len(self.outputs) - 1) + [f"> ⚠️ {message}"]

    def draw(self, ctx: Context, step: int | None, max_arrows: float) -> list[Any]:
        try:
            v = offsets.render(ctx.run, int(step or 0), int(max_arrows))
        except ValueError as e:  # e.g. a bilinear model: nothing to show here, say why
            return self.blank(str(e))
        stats = " · ".join(f"{k}: {val:.3f}" for k, val in v.stats.items())
        note = "" if v.initial is not None else "This model has no neighbour mask (srm_nomask): Δ = Δ′."
        text = status(notices_md(ctx.input.notices),
                      f"Step **{offsets.STEP_NAMES[v.step]}** · grid {v.grid[1]}×{v.grid[0]} · {stats}", note)
        pictures = [enlarge(p) for p in (v.flow, v.magnitude, v.initial, v.change, v.entropy, v.before, v.after)]
        return [pictures[0], v.wheel, v.arrows, *pictures[1:], text]


def build_srm(lab: Lab) -> SrmTab:
    c = offsets.CAPTIONS
    gr.Markdown("The Semantic Refinement Module learns, for every pixel of the finer grid, where to fetch the "
                "upsampled coarse feature from (an offset Δ), instead of always taking the pixel straight below.")
    with gr.Row():
        step = gr.Radio(list(offsets.STEP_NAMES), value=offsets.STEP_NAMES[2], type="index", label="SRM step")
        max_arrows = gr.Slider(8, 48, value=24, step=4, label="Arrows along the longer side")
    info = gr.Markdown()
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
    tab = SrmTab(controls=[step, max_arrows],
                 outputs=[flow, wheel, arrows, magnitude, initial, change, entropy, before, after, info])

    @user_errors
    def srm_endpoint(model, sample, image, label, step_index, arrows_count):
        return tab.draw(lab.context(model, sample, image, label), step_index, arrows_count)

    gr.on([step.change, max_arrows.release], srm_endpoint, inputs=lab.inputs + tab.controls,
          outputs=tab.outputs, **lab.model_event(api_name="srm"))
    return tab
