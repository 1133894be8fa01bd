"""A guided walk through CCL and BANE for students (the lab's Learn tab), on one toy picture and a real model.

Each step is a pure function returning a `Step`: a title, two or three plain sentences with this picture's
own numbers, and a picture (an RGB array or a plotly figure). Everything is computed with the project's
real code: anchors and the contextual update from `contextrast.losses.anchors`, BANE from
`contextrast.losses.bane`, and the loss value from `contextrast.losses.build_loss` (METHOD.md §2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import plotly.graph_objects as go
import torch

from contextrast.analysis.bane import LAYER_NAMES, run_loss
from contextrast.analysis.colormaps import blend, heat_rgb, resize_to
from contextrast.analysis.forward import ModelRun
from contextrast.analysis.predict import colorize
from contextrast.config import IGNORE_INDEX, LossConfig
from contextrast.losses.anchors import class_means, contextual_update
from contextrast.losses.bane import bane_on_grid, fine_error_distance
from contextrast.losses.grid import nearest_resize

DEFAULTS = dict(tau=LossConfig.tau, bane_percent=LossConfig.bane_percent, w_h=LossConfig.w_h)
TAU_SWEEP = (0.03, 0.05, 0.07, 0.1, 0.2, 0.3, 0.5, 1.0)
KS_SWEEP = (5, 10, 25, 50, 75, 100)
WH_SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class Step:
    title: str
    text: str
    picture: np.ndarray | go.Figure


def _hex(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def _check_layer(run: ModelRun, layer: int) -> None:
    if run.output.embeddings is None:
        raise ValueError("the model run has no embeddings; run it with contextrast.analysis.forward.run_model")
    if not 0 <= int(layer) < len(run.output.embeddings):
        raise ValueError(f"layer must be 0..{len(run.output.embeddings) - 1} ({', '.join(LAYER_NAMES)}); got {layer}")


def _layer(run: ModelRun, labels: np.ndarray, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer `layer`'s embeddings (1, D, h, w) and the ground truth nearest-downsampled to it (1, h, w)."""
    _check_layer(run, layer)
    if labels.shape != run.rgb.shape[:2]:
        raise ValueError(f"labels {labels.shape} and image {run.rgb.shape[:2]} differ in size")
    emb = run.output.embeddings[layer].detach().float()
    y = nearest_resize(torch.as_tensor(np.asarray(labels, np.int64))[None], tuple(emb.shape[-2:]))
    return emb, y


def _plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top-two principal axes (D, 2) of `points` (M, D), sign-fixed for stable pictures."""
    mean = points.mean(0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)
    axes = vt[:2].T if vt.shape[0] >= 2 else np.pad(vt.T, ((0, 0), (0, 2 - vt.shape[0])))
    signs = np.sign(axes[np.abs(axes).argmax(0), [0, 1]])
    return mean, axes * np.where(signs == 0, 1, signs)


def anchor_step(run: ModelRun, labels: np.ndarray, layer: int, classes: Sequence[str],
                palette: Sequence[Sequence[int]], max_points: int = 1500, seed: int = 0) -> Step:
    """Step 1, what an anchor is: the layer's pixel embeddings in a PCA plane coloured by class, and each
    class's mean embedding a_i^n (its anchor) as a star."""
    emb, y = _layer(run, labels, layer)
    k = len(classes)
    means, counts = class_means(emb, y, k)
    d = emb.shape[1]
    pix = emb[0].reshape(d, -1).T.numpy()
    lab = y.reshape(-1).numpy()
    keep = np.flatnonzero(lab != IGNORE_INDEX)
    keep = np.random.default_rng(seed).permutation(keep)[:max_points]
    present = np.flatnonzero(counts.numpy() > 0)
    mean, axes = _plane(pix[keep])
    p2, a2 = (pix[keep] - mean) @ axes, (means.numpy()[present] - mean) @ axes
    fig = go.Figure()
    for c in present.tolist():
        m = lab[keep] == c
        fig.add_trace(go.Scattergl(x=p2[m, 0], y=p2[m, 1], mode="markers", name=classes[c],
                                   marker=dict(size=4, color=_hex(palette[c]), opacity=0.6)))
    fig.add_trace(go.Scatter(x=a2[:, 0], y=a2[:, 1], mode="markers+text", name="anchors a (class means)",
                             text=[classes[c] for c in present.tolist()], textposition="top center",
                             marker=dict(symbol="star", size=18, color=[_hex(palette[c]) for c in present.tolist()],
                                         line=dict(width=2, color="black"))))
    fig.update_layout(title=f"pixel embeddings at {LAYER_NAMES[layer]} and their class anchors", height=420,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="PC 1", yaxis_title="PC 2")
    h, w = emb.shape[-2:]
    text = (f"Every pixel of the {w}×{h} grid of layer {LAYER_NAMES[layer]} has a 256-number embedding; here they "
            f"are flattened to two numbers (PCA) and coloured by their true class. The **anchor** of a class is "
            f"simply the mean embedding of its pixels (the stars): {len(present)} classes are present, so there are "
            f"{len(present)} anchors. The loss pulls each pixel towards its own class's anchor and pushes it away "
            f"from the others.")
    return Step("1 · What an anchor is", text, fig)


def update_step(run: ModelRun, labels: np.ndarray, layer: int, w_h: float, classes: Sequence[str],
                palette: Sequence[Sequence[int]]) -> Step:
    """Step 2, the contextual update: each class's anchor at `layer` (a_i), at the deepest layer (a_I) and the
    updated â_i = normalise((1 − w_h)·a_i + w_h·a_I), in the PCA plane of all these anchors, with arrows
    a_i → â_i, and how close â_i is to a_I (cosine)."""
    if not 0.0 <= float(w_h) <= 1.0:
        raise ValueError(f"w_h must lie in [0, 1]; got {w_h}")
    k = len(classes)
    emb, y = _layer(run, labels, layer)
    deep_emb, deep_y = _layer(run, labels, len(run.output.embeddings) - 1)
    shallow, counts = class_means(emb, y, k)
    deep, deep_counts = class_means(deep_emb, deep_y, k)
    updated = contextual_update(shallow, counts > 0, deep, deep_counts > 0, float(w_h))
    present = np.flatnonzero((counts > 0).numpy())  # every anchor of this layer (step 1's stars)
    if present.size == 0:
        raise ValueError("no class is present at this layer; pick another picture")
    has_deep = (deep_counts > 0).numpy()[present]
    unit = torch.nn.functional.normalize
    s, u = unit(shallow[present], dim=1).numpy(), updated[present].numpy()
    dp = unit(deep[present], dim=1).numpy()[has_deep]
    mean, axes = _plane(np.concatenate([s, dp, u]))
    s2, d2, u2 = (s - mean) @ axes, (dp - mean) @ axes, (u - mean) @ axes
    fig = go.Figure()
    names = [classes[c] for c in present.tolist()]
    colours = [_hex(palette[c]) for c in present.tolist()]
    for arr, label, symbol, keep in ((s2, f"a at {LAYER_NAMES[layer]}", "circle", np.ones(len(present), bool)),
                                     (d2, "a at the deepest layer", "square", has_deep),
                                     (u2, "updated â", "star", np.ones(len(present), bool))):
        fig.add_trace(go.Scatter(x=arr[:, 0], y=arr[:, 1], mode="markers+text" if symbol == "star" else "markers",
                                 name=label, text=[n for n, k in zip(names, keep) if k], textposition="top center",
                                 marker=dict(symbol=symbol, size=14 if symbol == "star" else 10,
                                             color=[c for c, k in zip(colours, keep) if k],
                                             line=dict(width=1.5, color="black")),
                                 hovertemplate="%{text}<extra>" + label + "</extra>"))
    for a, b in zip(s2, u2):
        fig.add_annotation(x=b[0], y=b[1], ax=a[0], ay=a[1], xref="x", yref="y", axref="x", ayref="y",
                           showarrow=True, arrowhead=3, arrowwidth=1.5, arrowcolor="#444")
    fig.update_layout(title=f"contextual update with w_h = {w_h:g}", height=420, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="PC 1 of the anchors", yaxis_title="PC 2 of the anchors")
    cos_before = (s[has_deep] * dp).sum(1)
    cos_after = (u[has_deep] * dp).sum(1)
    missing = [n for n, k in zip(names, has_deep) if not k]
    text = (f"Shallow layers see edges and textures, the deepest layer sees whole objects. So each shallow anchor "
            f"is moved towards the deepest layer's anchor of the same class: â = (1 − w_h)·a + w_h·a_deep, then "
            f"rescaled to length 1 (arrows: circle → star). With w_h = {w_h:g} the anchors' mean cosine similarity "
            f"to the deepest anchors goes from {cos_before.mean():.2f} to {cos_after.mean():.2f} (1 = same direction)."
            + (f" Too small for the deepest grid, {', '.join(missing)} keep{'s' if len(missing) == 1 else ''} "
               "its own anchor (no square)." if missing else ""))
    return Step("2 · The contextual update", text, fig)


@dataclass
class BaneSteps:
    error: Step
    distance: Step
    kept: Step
    counts: dict[str, int]


def bane_steps(run: ModelRun, labels: np.ndarray, layer: int, bane_percent: float,
               palette: Sequence[Sequence[int]], config: LossConfig | None = None, seed: int = 0) -> BaneSteps:
    """Steps 3–5, BANE on the layer's grid as the loss runs it (`config`: its rule and distance stride, default
    settings when None; K_s = `bane_percent`): the error map (coloured by the wrongly predicted class), each
    error pixel's distance to its region's edge, and the ones kept (K_s % per class) as hard negatives."""
    emb, y = _layer(run, labels, layer)
    if not 0.0 < float(bane_percent) <= 100.0:
        raise ValueError(f"K_s must lie in (0, 100]; got {bane_percent}")
    cfg = replace(config or LossConfig(), bane_percent=float(bane_percent))
    grid = tuple(emb.shape[-2:])
    target = torch.as_tensor(np.asarray(labels, np.int64))[None]
    fine = fine_error_distance(run.logits, target, cfg.bane_distance_stride)
    pred, sel = bane_on_grid(run.logits, y, cfg, torch.Generator().manual_seed(int(seed)), fine)
    size = run.rgb.shape[:2]
    error = sel.error[0].numpy()
    up = resize_to(error.astype(np.float32), size, nearest=True)
    pred_colour = resize_to(colorize(pred[0].numpy(), palette), size, nearest=True)
    error_pic = blend((run.rgb * 0.4).astype(np.uint8), pred_colour, up)
    dist = sel.distance[0].numpy().astype(np.float32)
    finite = np.isfinite(dist) & error
    top = float(dist[finite].max()) if finite.any() else 1.0
    heat = resize_to(heat_rgb(np.where(finite, dist, 0.0), 0.0, max(top, 1.0), "inferno"), size, nearest=True)
    dist_pic = blend((run.rgb * 0.3).astype(np.uint8), heat, up)
    keep = sel.keep[0].numpy()
    kept_pic = blend((run.rgb * 0.4).astype(np.uint8), np.full_like(run.rgb, (235, 40, 40)),
                     resize_to(keep.astype(np.float32), size, nearest=True))
    far = error & ~keep
    kept_pic = blend(kept_pic, np.full_like(run.rgb, (120, 120, 255)), resize_to(far.astype(np.float32), size,
                                                                                  nearest=True) * 0.6)
    n_err, n_keep = int(error.sum()), int(keep.sum())
    h, w = grid
    counts = {"error pixels": n_err, "kept (hard negatives)": n_keep, "grid pixels": h * w}
    return BaneSteps(
        error=Step("3 · Where the model is wrong", (
            f"BANE starts from the model's own mistakes. On the {w}×{h} grid of {LAYER_NAMES[layer]}, {n_err} of "
            f"{h * w} pixels are predicted as a class they are not; they are coloured here by the class the model "
            f"wrongly chose. For that class's anchor these pixels are the most confusing negatives."), error_pic),
        distance=Step("4 · Distance to the edge of each error region", (
            f"For every error pixel BANE measures how far it lies from the edge of its error region (bright = deep "
            f"inside, largest distance here {top if finite.any() else 0:.1f} grid pixels). Pixels near the edge sit "
            f"at object boundaries, where the model hesitates between two classes."), dist_pic),
        kept=Step("5 · Keep the closest K_s percent", (
            f"Per image and class, BANE keeps the error pixels whose distance is in the lowest K_s = {bane_percent:g} "
            f"percent: {n_keep} hard negatives (red); the {n_err - n_keep} deeper ones (blue) are left out. When "
            f"there are not enough, random pixels of other classes fill up the negatives."), kept_pic),
        counts=counts,
    )


def loss_value(run: ModelRun, labels: np.ndarray, num_classes: int, tau: float, bane_percent: float, w_h: float,
               seed: int = 0, config: LossConfig | None = None) -> dict[str, float]:
    """The real Contextrast loss on this picture (contextrast.losses, via analysis.bane.run_loss, no warm-up) with
    the model's other loss settings (`config`): {"ce", "ccl", "total", "L_1".."L_4"}, L_i the unweighted layer
    losses."""
    if not float(tau) > 0:
        raise ValueError(f"τ must be positive; got {tau}")
    if not 0.0 <= float(w_h) <= 1.0:
        raise ValueError(f"w_h must lie in [0, 1]; got {w_h}")
    if not 0.0 < float(bane_percent) <= 100.0:
        raise ValueError(f"K_s must lie in (0, 100]; got {bane_percent}")
    record = run_loss(run, np.asarray(labels, np.int64), num_classes, bane_percent=float(bane_percent), seed=seed,
                      config=config, tau=float(tau), w_h=float(w_h))
    out = {"ce": record.terms["ce"], "ccl": record.terms[record.loss], "total": record.terms["total"]}  # L_CCL
    out.update({f"L_{r.layer + 1}": float(r.loss) for r in record.layers})
    return out


def defaults_of(config: LossConfig | None) -> dict[str, float]:
    """τ, K_s and w_h of `config` (the model card's loss), or the project's defaults."""
    if config is None:
        return dict(DEFAULTS)
    return dict(tau=config.tau, bane_percent=config.bane_percent, w_h=config.w_h)


def loss_step(run: ModelRun, labels: np.ndarray, num_classes: int, tau: float, bane_percent: float,
              w_h: float, seed: int = 0, config: LossConfig | None = None
              ) -> tuple[Step, dict[str, float], dict[str, float]]:
    """Step 6, how τ, K_s and w_h change the loss: L_CCL at the chosen settings and at the model's own (its card's
    loss, `config`, else the defaults), and a sweep of L_CCL over each knob with the others held at the chosen
    values. Returns (step, chosen, defaults)."""
    base = defaults_of(config)
    chosen = loss_value(run, labels, num_classes, tau, bane_percent, w_h, seed, config)
    defaults = loss_value(run, labels, num_classes, seed=seed, config=config, **base)
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("τ (temperature)", "K_s (%)", "w_h"), shared_yaxes=True)
    sweeps = (("tau", TAU_SWEEP, tau), ("bane_percent", KS_SWEEP, bane_percent), ("w_h", WH_SWEEP, w_h))
    settings = dict(tau=tau, bane_percent=bane_percent, w_h=w_h)
    for col, (name, values, current) in enumerate(sweeps, start=1):
        ys = [loss_value(run, labels, num_classes, seed=seed, config=config, **{**settings, name: v})["ccl"]
              for v in values]
        fig.add_trace(go.Scatter(x=list(values), y=ys, mode="lines+markers", name=name, showlegend=False,
                                 line=dict(color="#3b82f6")), row=1, col=col)
        fig.add_trace(go.Scatter(x=[current], y=[chosen["ccl"]], mode="markers", showlegend=False,
                                 marker=dict(size=13, color="#ef4444", symbol="diamond")), row=1, col=col)
    fig.update_xaxes(type="log", tickmode="array", tickvals=list(TAU_SWEEP), ticktext=[f"{t:g}" for t in TAU_SWEEP],
                     row=1, col=1)  # plotly's own log ticks read "5 0.1 2 5 1" over this range
    fig.update_yaxes(title_text="L_CCL", row=1, col=1)
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), title="L_CCL as one knob moves (red: now)")
    change = chosen["ccl"] - defaults["ccl"]
    text = (f"With τ = {tau:g}, K_s = {bane_percent:g} %, w_h = {w_h:g} the contrastive loss on this picture is "
            f"**L_CCL = {chosen['ccl']:.4f}** ({change:+.4f} from {defaults['ccl']:.4f} at the model's own settings "
            f"τ = {base['tau']:g}, K_s = {base['bane_percent']:g} %, w_h = {base['w_h']:g}). A small τ "
            f"sharpens the softmax, so a few hard negatives dominate; K_s decides how many boundary errors count "
            f"as hard negatives, and w_h how much the deep anchors steer the shallow ones.")
    return Step("6 · How τ, K_s and w_h change the loss", text, fig), chosen, defaults
