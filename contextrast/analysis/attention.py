"""CRM attention view (METHOD.md §1 "CRM"): one pixel's spatial-attention row over the image, and
the channel attention A_c with how much each encoder stage feeds each channel."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from contextrast.analysis.colormaps import Scale, blend, resize_to, scale_of
from contextrast.analysis.forward import ModelRun
from contextrast.models.crm import CRMIntermediates

STAGE_NAMES = ("F1 (1/4)", "F2 (1/8)", "F3 (1/16)", "F4 (1/32)")

CAPTIONS = {
    "spatial": "Where the clicked pixel (cross) looks: its row of the spatial attention A_s over the 1/32 grid, "
               "upsampled and laid over the image; bright = attended.",
    "channel": "Channel attention A_c (row = channel being rebuilt, column = channel it draws from). "
               "The CRM's channels are mixtures made by its 1×1 aggregation conv, not stage channels: the strip on "
               "the left shows each channel's share of that conv's weight magnitude per encoder stage, and the "
               "channels are ordered by the stage that feeds them most.",
}


def _crm(run: ModelRun) -> CRMIntermediates:
    if run.output.crm is None:
        raise ValueError("this model has no CRM (context is ppm or none): there is no attention to show")
    return run.output.crm


def grid_cell(crm: CRMIntermediates, image_size: tuple[int, int], y: float, x: float) -> tuple[int, int]:
    """Image pixel (y, x) → the (row, col) of the F4 grid cell that contains it."""
    H, W = image_size
    if not (0 <= y < H and 0 <= x < W):
        raise ValueError(f"pixel (x={x}, y={y}) lies outside the {W}×{H} image")
    h4, w4 = crm.grid
    return min(int(y * h4 / H), h4 - 1), min(int(x * w4 / W), w4 - 1)


def spatial_row(crm: CRMIntermediates, image_size: tuple[int, int], y: float, x: float) -> np.ndarray:
    """The row of A_s (N, N) for the query cell containing image pixel (y, x), as an (h4, w4) map
    that sums to 1 (a softmax row)."""
    r, c = grid_cell(crm, image_size, y, x)
    h4, w4 = crm.grid
    row = crm.spatial_attn[0, r * w4 + c].detach().float().cpu().numpy()
    return row.reshape(h4, w4)


def spatial_overlay(rgb: np.ndarray, row: np.ndarray, y: float, x: float, opacity: float = 0.65,
                    scale: Scale | None = None) -> np.ndarray:
    """Attention row (h4, w4) upsampled bilinearly to the image, coloured on `scale` (default: 0 to the row's
    max), blended over the image in proportion to the attention, with a cross at (y, x)."""
    H, W = rgb.shape[:2]
    up = resize_to(row.astype(np.float32), (H, W))
    scale = scale or attention_scale(row)
    heat = scale.rgb(up)
    alpha = opacity * np.sqrt(np.clip((up - scale.lo) / (scale.hi - scale.lo), 0.0, 1.0))  # sqrt: keep weak mass visible
    out = blend(rgb, heat, 0.25 + 0.75 * alpha)
    arm = max(6, min(H, W) // 30)
    cx, cy = int(round(x)), int(round(y))
    for colour, width in (((0, 0, 0), 4), ((0, 255, 255), 2)):
        cv2.line(out, (cx - arm, cy), (cx + arm, cy), colour, width)
        cv2.line(out, (cx, cy - arm), (cx, cy + arm), colour, width)
    return out


def stage_contributions(aggregate_weight: Tensor, stage_channels: Sequence[int]) -> np.ndarray:
    """Share of each CRM channel's 1×1 aggregation weights that comes from each stage's block of inputs.

    aggregate_weight (C, Σ c_s, 1, 1); stage_channels: the input block sizes in concatenation order.
    Returns (C, S), rows summing to 1: Σ|w| over a block / Σ|w| over all inputs.
    """
    w = aggregate_weight.detach().float().abs().flatten(1)  # (C, Σ c_s)
    if w.shape[1] != sum(stage_channels):
        raise ValueError(f"aggregate conv has {w.shape[1]} inputs but the stages give {sum(stage_channels)}")
    blocks = torch.split(w, list(stage_channels), dim=1)
    per_stage = torch.stack([b.sum(dim=1) for b in blocks], dim=1)
    return (per_stage / per_stage.sum(dim=1, keepdim=True).clamp_min(1e-12)).numpy()


def model_stage_contributions(model: torch.nn.Module) -> tuple[np.ndarray, list[str]]:
    """`stage_contributions` of a SCRNet's CRM, with the names of the stages it aggregates."""
    context = model.context
    if not hasattr(context, "aggregate"):
        raise ValueError("this model has no CRM (context is ppm or none): there is no channel attention")
    stages = list(context.stages)
    channels = [model.backbone.channels[i] for i in stages]
    return stage_contributions(context.aggregate[0].weight, channels), [STAGE_NAMES[i] for i in stages]


def channel_figure(channel_attn: Tensor | np.ndarray, contributions: np.ndarray, stage_names: Sequence[str]) -> go.Figure:
    """Plotly figure: left, the (C, S) stage shares; right, A_c (C, C); channels ordered by dominant
    stage (then by that stage's share), with lines between the stage blocks."""
    a = channel_attn.detach().float().cpu().numpy() if isinstance(channel_attn, Tensor) else np.asarray(channel_attn)
    if a.ndim == 3:
        a = a[0]
    c = a.shape[0]
    if contributions.shape[0] != c:
        raise ValueError(f"A_c has {c} channels but the stage shares have {contributions.shape[0]}")
    dominant = contributions.argmax(axis=1)
    order = np.lexsort((-contributions[np.arange(c), dominant], dominant))
    a = a[np.ix_(order, order)]
    shares = contributions[order]
    labels = [f"ch {i} · {stage_names[dominant[i]]}" for i in order]
    positions = list(range(c))
    blocks = np.flatnonzero(np.r_[True, np.diff(dominant[order]) != 0, True])
    centres = [(blocks[k] + blocks[k + 1] - 1) / 2 for k in range(len(blocks) - 1)]
    block_names = [f"{stage_names[dominant[order][blocks[k]]]} ({blocks[k + 1] - blocks[k]} ch)"
                   for k in range(len(blocks) - 1)]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.18, 0.82], shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=("stage share", "channel attention A_c"))  # short: the left panel is narrow
    short = [str(n).split()[0] for n in stage_names]  # "F1 (1/4)" → "F1": the strip is narrow
    fig.add_trace(go.Heatmap(z=shares, x=short, y=positions,
                             text=[[f"{lb}<br>{n}" for n in stage_names] for lb in labels],
                             colorscale="Blues", zmin=0, zmax=1,  # its scale: a bar under the strip
                             colorbar=dict(title=dict(text="share", side="top"), orientation="h", x=0.0,
                                           xanchor="left", y=-0.09, yanchor="top", len=0.17, thickness=8,
                                           tickvals=[0, 0.5, 1]),
                             hovertemplate="%{text}: %{z:.2f}<extra></extra>"), 1, 1)
    fig.add_trace(go.Heatmap(z=a, x=positions, y=positions, colorscale="Viridis", colorbar=dict(title="A_c"),
                             customdata=np.array([[(r, k) for k in labels] for r in labels], dtype=object),
                             hovertemplate="row %{customdata[0]}<br>col %{customdata[1]}<br>%{z:.3g}<extra></extra>"),
                  1, 2)
    for b in blocks[1:-1] - 0.5:
        fig.add_hline(y=b, line=dict(color="white", width=1), row=1, col=2)
        fig.add_vline(x=b, line=dict(color="white", width=1), row=1, col=2)
        fig.add_hline(y=b, line=dict(color="black", width=1), row=1, col=1)
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=centres, ticktext=block_names, row=1, col=1)
    fig.update_yaxes(title_text="channel being rebuilt (grouped by feeding stage)", row=1, col=1)
    fig.update_xaxes(tickmode="array", tickvals=centres, ticktext=block_names, row=1, col=2,
                     title_text="channel it draws from")
    fig.update_annotations(font_size=13)
    fig.update_xaxes(tickangle=0, row=1, col=1)
    fig.update_layout(height=600, margin=dict(l=10, r=10, t=40, b=90))
    return fig


ATTENTION_LABEL = "A_s"


def attention_scale(row: np.ndarray) -> Scale:
    """The scale of a spatial-attention row: 0 to its largest weight (a softmax row sums to 1)."""
    return scale_of(row, "inferno", ATTENTION_LABEL)


def render_spatial(run: ModelRun, y: float, x: float, scale: Scale | None = None
                   ) -> tuple[np.ndarray, np.ndarray, Scale]:
    """(overlay (H, W, 3) uint8, attention row (h4, w4), its colour scale) for image pixel (y, x) of `run`;
    `scale` replaces the row's own (to keep one scale across queries, images and models)."""
    crm = _crm(run)
    row = spatial_row(crm, run.rgb.shape[:2], y, x)
    scale = scale or attention_scale(row)
    return spatial_overlay(run.rgb, row, y, x, scale=scale), row, scale


QUERY_INDEPENDENT = 0.05  # mean total-variation distance between rows below which every query attends alike


def query_dependence_note(run: ModelRun) -> str:
    """A sentence when the spatial attention barely depends on the query pixel (`crm_statistics`'s
    `spatial_query_dependence`, 0 = every query pixel's row is the same), else ""."""
    from contextrast.analysis.diagnose import crm_statistics

    stats = crm_statistics(run.output)
    if stats is None or stats["spatial_query_dependence"] >= QUERY_INDEPENDENT:
        return ""
    return (f"The spatial attention is (nearly) the same for every query pixel on this image (rows differ by "
            f"{stats['spatial_query_dependence']:.3f} in total variation on average, of at most 1): clicking "
            "elsewhere moves the cross but barely changes the picture. The CRM adds the same context everywhere.")


def render_channels(run: ModelRun, model: torch.nn.Module) -> go.Figure:
    """The channel-attention figure of `run`, with the stage shares of `model`'s aggregation conv."""
    crm = _crm(run)
    shares, names = model_stage_contributions(model)
    return channel_figure(crm.channel_attn, shares, names)
