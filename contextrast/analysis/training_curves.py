"""Training curves of a run: loss terms and validation mIoU against iteration, from metrics.jsonl.

The trainer appends one JSON object per log step ({"iter", "lr", "images_per_s", "elapsed_s",
"total", "ce", …}) and one per validation ({"iter", "val": {"miou", …}}). A run resumed after a kill
logs some iterations twice; the later record wins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

NOT_LOSS_KEYS = ("iter", "lr", "images_per_s", "elapsed_s")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl; a missing file is no records, a torn last line (a writer killed
    mid-line) is skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "iter" in record:
            out.append(record)
    return out


def split_curves(records: list[dict[str, Any]]) -> tuple[dict[str, list[tuple[int, float]]], list[tuple[int, float]]]:
    """({loss term: [(iter, value)]}, [(iter, val mIoU)]), sorted by iteration, later duplicates winning."""
    losses: dict[str, dict[int, float]] = {}
    miou: dict[int, float] = {}
    for r in records:
        it = int(r["iter"])
        if "val" in r:
            value = (r["val"] or {}).get("miou")
            if value is not None:
                miou[it] = float(value)
            continue
        for key, value in r.items():
            if key not in NOT_LOSS_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
                losses.setdefault(key, {})[it] = float(value)
    return ({k: sorted(v.items()) for k, v in losses.items()}, sorted(miou.items()))


def training_curves_figure(records: list[dict[str, Any]], title: str = "") -> go.Figure:
    """Two stacked panels sharing the iteration axis: loss terms (total in bold), val mIoU in %."""
    losses, miou = split_curves(records)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.62, 0.38],
                        subplot_titles=("training loss", "validation mIoU (%)"))
    for key in sorted(losses, key=lambda k: (k != "total", k)):
        points = losses[key]
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=key,
                                 line={"width": 3 if key == "total" else 1.5}), row=1, col=1)
    fig.add_trace(go.Scatter(x=[p[0] for p in miou], y=[100 * p[1] for p in miou], mode="lines+markers",
                             name="val mIoU"), row=2, col=1)
    fig.update_xaxes(title_text="iteration", row=2, col=1)
    fig.update_layout(title=title or None, height=480, margin={"l": 50, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.15})
    if not records:
        fig.add_annotation(text="no metrics yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def steady_eta(first: tuple[float, int], now: tuple[float, int], total: int) -> float | None:
    """Seconds left for a job seen at (time, iteration) `first` and again at `now`: the remaining iterations at
    the mean rate between the two (validation pauses included), so the estimate does not jump with each log
    interval's speed. None until the job has advanced."""
    (t0, i0), (t1, i1) = first, now
    if i1 <= i0 or t1 <= t0:
        return None
    return max(0.0, (total - i1) * (t1 - t0) / (i1 - i0))
