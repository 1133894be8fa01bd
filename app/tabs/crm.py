"""CRM tab: click a pixel to see its row of the spatial attention over the image; the channel
attention with each channel's feeding stages (METHOD.md §1 "CRM")."""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.display import Picture, to_source, with_scale
from app.lab import Context, Lab, message_box, try_this
from contextrast.analysis import attention


def draw(ctx: Context, y: float | None, x: float | None, scales: dict, new_input: bool = False
         ) -> tuple[list[Any], dict]:
    """[overlay, channel figure, y, x, info] for query pixel (y, x) (default: the centre), and the scale used.
    A pixel outside the image is refused, except for a `new_input`, where the query moves to the centre (and
    the text says so)."""
    H, W = ctx.input.rgb.shape[:2]
    moved = ""
    if new_input and y is not None and x is not None and not (0 <= float(y) < H and 0 <= float(x) < W):
        moved = (f"The previous query pixel (x={float(x):g}, y={float(y):g}) lies outside this {W}×{H} image: the "
                 "query is the centre now.")
        y = x = None
    y = H // 2 if y is None else float(y)
    x = W // 2 if x is None else float(x)
    if not (0 <= y < H and 0 <= x < W):
        raise ValueError(f"the query pixel (x={x:g}, y={y:g}) lies outside this {W}×{H} image: x must be 0..{W - 1} "
                         f"and y 0..{H - 1}")
    if ctx.run.output.crm is None:  # a model without CRM: say so in the tab
        return [None, None, int(y), int(x), ctx.status(
                                                    "> ℹ️ this model has no CRM (context is ppm or none): there is "
                                                    "no attention to show")], {}
    overlay, row, scale = attention.render_spatial(ctx.run, y, x, scales.get("attention"))
    figure = attention.render_channels(ctx.run, ctx.loaded.model)
    r, c = attention.grid_cell(ctx.run.output.crm, (H, W), y, x)
    h4, w4 = ctx.run.output.crm.grid
    text = ctx.status(
                  f"Query pixel (x={int(x)}, y={int(y)}) → column {c}, row {r} of the {w4}×{h4} grid of F4; "
                  f"its strongest attention weight is {row.max():.3f} (uniform would be {1 / row.size:.3f}).",
                  attention.query_dependence_note(ctx.run), moved)
    return [with_scale(overlay, scale), figure, int(y), int(x), text], {"attention": scale}


def build_crm(lab: Lab) -> dict[str, Any]:
    c = attention.CAPTIONS
    with lab.page("CRM attention"):
        try_this("click a car, then the sky: does the bright area follow the query pixel? The line above the "
                 "pictures says when it cannot.")
        gr.Markdown("The Contextual Refinement Module mixes the four encoder stages and lets every position of the "
                    "1/32 map look at every other one. **Click the image** to pick the query pixel.")
        names = lab.samples.names()
        h, w = lab.samples.load(names[0])[0].shape[:2] if names else (0, 0)
        with gr.Row():  # the opening sample's centre (Gradio shows an empty number box as 0)
            y = gr.Number(label="Query y (px)", precision=0, value=h // 2, elem_id="crm-y")
            x = gr.Number(label="Query x (px)", precision=0, value=w // 2, elem_id="crm-x")
        message = message_box()
        info = gr.Markdown(elem_id="crm-info")
        with gr.Row():
            with gr.Column():
                overlay = Picture(label="Spatial attention of the query pixel (click to move it)", interactive=False,
                                   format="png", height=340, elem_id="crm-overlay")
                gr.Markdown(c["spatial"])
            with gr.Column():
                channels = gr.Plot(label="Channel attention")
                gr.Markdown(c["channel"])
    outputs = [overlay, channels, y, x, info]

    def view(request: gr.Request | None, keep: bool, ctx: Context, y_value, x_value, new_input: bool = False
             ) -> list[Any]:
        values, used = draw(ctx, y_value, x_value, lab.kept_scales(request, keep, "crm"), new_input)
        lab.remember_scales(request, "crm", used)
        return values

    def crm_view(model, sample, image, label, keep, y_value, x_value, request: gr.Request):
        return view(request, keep, lab.context(model, sample, image, label), y_value, x_value)

    def crm_pick(model, sample, image, label, keep, evt: gr.SelectData, request: gr.Request):
        ctx = lab.context(model, sample, image, label)
        px, py = to_source(evt.index, ctx.input.rgb.shape)  # the click is in the enlarged picture's pixels
        return view(request, keep, ctx, py, px)

    inputs = [*lab.inputs, lab.components["keep_scale"]]

    def crm_view_new(model, sample, image, label, keep, y_value, x_value, request: gr.Request):
        """The tab opened or the input changed: the same query pixel, or the centre when it lies outside."""
        return view(request, keep, lab.context(model, sample, image, label), y_value, x_value, new_input=True)

    lab.draws_input(crm_view_new, [*inputs, y, x], outputs, message, api_name="crm_view")
    lab.on(overlay.select, crm_pick, inputs, outputs, message, api_name="crm_pick")
    lab.on([y.submit, x.submit], crm_view, [*inputs, y, x], outputs, message, api_name="crm")
    return dict(outputs=outputs, message=message)
