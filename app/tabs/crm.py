"""CRM tab: click a pixel to see its row of the spatial attention over the image; the channel
attention with each channel's feeding stages (METHOD.md §1 "CRM")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.display import enlarge, to_source
from app.lab import Context, Lab, notices_md, status, user_errors
from contextrast.analysis import attention


@dataclass
class CrmTab:
    controls: list[Any]
    outputs: list[Any]

    def draw(self, ctx: Context, y: float | None, x: float | None) -> list[Any]:
        H, W = ctx.input.rgb.shape[:2]
        y = H / 2 if y is None else float(y)
        x = W / 2 if x is None else float(x)
        if not (0 <= y < H and 0 <= x < W):  # e.g. a pixel picked on a bigger previous image
            y, x = H / 2, W / 2
        try:
            overlay, row = attention.render_spatial(ctx.run, y, x)
            figure = attention.render_channels(ctx.run, ctx.loaded.model)
        except ValueError as e:  # a model without CRM: say so in the tab
            return [None, None, int(y), int(x), f"> ⚠️ {e}"]
        r, c = attention.grid_cell(ctx.run.output.crm, (H, W), y, x)
        h4, w4 = ctx.run.output.crm.grid
        text = status(notices_md(ctx.input.notices),
                      f"Query pixel (x={int(x)}, y={int(y)}) → column {c}, row {r} of the {w4}×{h4} grid of F4; "
                      f"its strongest attention weight is {row.max():.3f} (uniform would be {1 / row.size:.3f}).")
        return [enlarge(overlay), figure, int(y), int(x), text]


def build_crm(lab: Lab) -> CrmTab:
    c = attention.CAPTIONS
    gr.Markdown("The Contextual Refinement Module mixes the four encoder stages and lets every position of the "
                "1/32 map look at every other one. **Click the image** to pick the query pixel.")
    with gr.Row():
        y = gr.Number(label="Query y (px)", precision=0, value=None)
        x = gr.Number(label="Query x (px)", precision=0, value=None)
    info = gr.Markdown()
    with gr.Row():
        with gr.Column():
            overlay = gr.Image(label="Spatial attention of the query pixel (click to move it)", interactive=False,
                               format="png", height=340)
            gr.Markdown(c["spatial"])
        with gr.Column():
            channels = gr.Plot(label="Channel attention")
            gr.Markdown(c["channel"])
    tab = CrmTab(controls=[y, x], outputs=[overlay, channels, y, x, info])

    @user_errors
    def crm_endpoint(model, sample, image, label, y_value, x_value):
        return tab.draw(lab.context(model, sample, image, label), y_value, x_value)

    @user_errors
    def crm_pick(model, sample, image, label, evt: gr.SelectData):
        ctx = lab.context(model, sample, image, label)
        px, py = to_source(evt.index, ctx.input.rgb.shape)  # the click is in the enlarged picture's pixels
        return tab.draw(ctx, py, px)

    overlay.select(crm_pick, inputs=lab.inputs, outputs=tab.outputs, **lab.model_event(api_name="crm_pick"))
    gr.on([y.submit, x.submit], crm_endpoint, inputs=lab.inputs + tab.controls, outputs=tab.outputs,
          **lab.model_event(api_name="crm"))
    return tab
